package brokers

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestMosquittoStartsWithTheBenchConf(t *testing.T) {
	bin, err := MosquittoBin()
	if err != nil {
		t.Fatal(err)
	}
	cred := Credentials{Username: "bench", Password: "pw-1"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Start(ctx, Spec{Name: "mosquitto", Kind: Mosquitto, Bin: bin}, t.TempDir(), cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })

	if err := b.probe(Credentials{Username: "bench", Password: "wrong"}); err == nil {
		t.Fatal("a wrong password was accepted: the conf does not enforce auth")
	}
	if rss, err := b.RSSKB(); err != nil || rss <= 0 {
		t.Fatalf("RSS %d KiB, %v", rss, err)
	}
	if _, err := b.CPUSeconds(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if b.Alive() {
		t.Fatal("still alive after Stop")
	}
	// Persistence on: mosquitto saves its store at a graceful stop.
	if _, err := os.Stat(b.Dir + "/store/mosquitto.db"); err != nil {
		t.Fatalf("no store after stop: %v; output: %s", err, b.Output())
	}
}

func TestStartReportsABrokerThatCannotStart(t *testing.T) {
	bin, err := MosquittoBin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = Start(ctx, Spec{Name: "bad", Kind: Mosquitto, Bin: bin}, t.TempDir(), Credentials{Username: "u", Password: "p"}, []string{"no_such_option 1"})
	if err == nil {
		t.Fatal("a broker with a bad conf line started")
	}
	t.Log(err)
}

func TestProcReaders(t *testing.T) {
	if kb, err := RSSKB(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("own RSS %d, %v", kb, err)
	}
	if _, err := CPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := RSSKB(1 << 30); err == nil {
		t.Fatal("RSS of a process that does not exist")
	}
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Two files read one after the other: only that every figure is there.
	if m.RSS <= 0 || m.RSSAnon <= 0 || m.RSSFile <= 0 || m.PSS <= 0 || m.PSSAnon <= 0 || m.PSSFile <= 0 {
		t.Fatalf("own memory %+v", m)
	}
	if _, err := ReadMemory(1 << 30); err == nil {
		t.Fatal("memory of a process that does not exist")
	}
}

package supervisor

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// A command name holding ") " and spaces, as a program may name itself.
	line := "4242 (we) ird (name) S 1 4240 4240 0 -1 4194560 200 0 0 0 12 34 5 6 20 0 3 0 987654 1234567 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseProcStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{PID: 4242, State: 'S', PPID: 1, PGID: 4240, CPUTicks: 12 + 34 + 5 + 6, StartTicks: 987654, RSSBytes: 321 * pageSize}
	if st != want {
		t.Fatalf("got %+v\nwant %+v", st, want)
	}
	if _, err := parseProcStat(1, []byte("1 (init) S 0 1")); err == nil {
		t.Error("a short line parsed")
	}
	if _, err := parseProcStat(1, []byte("no parenthesis")); err == nil {
		t.Error("a line without a command name parsed")
	}
}

func TestReadProcStatOfThisProcess(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.RSSBytes == 0 || st.StartTicks == 0 {
		t.Fatalf("%+v", st)
	}
	if _, err := readProcStat(1 << 30); !os.IsNotExist(err) {
		t.Fatalf("a process that does not exist: %v", err)
	}
}

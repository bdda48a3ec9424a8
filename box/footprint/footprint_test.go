package footprint

import (
	"testing"
	"time"
)

func TestKeeperActsOnlyWhenIdle(t *testing.T) {
	var k keeper
	const kib = 1 << 10
	steps := []struct {
		age       time.Duration
		allocated uint64
		want      action
		why       string
	}{
		{5 * time.Second, 50 * kib, settle, "idle at 5 s: start-up is over"},
		{10 * time.Second, 500 * kib, none, "idle, too little garbage yet"},
		{12 * time.Second, 900 * kib, none, "idle, still too little"},
		{14 * time.Second, 1300 * kib, trim, "idle, 1250 KiB since the settle"},
		{20 * time.Second, 20 << 20, none, "busy: 19 MiB in one tick"},
		{25 * time.Second, 40 << 20, none, "still busy"},
		{30 * time.Second, 40<<20 + 100*kib, trim, "idle again, with the busy ticks' garbage"},
		{60 * time.Second, 60 << 20, none, "busy at 1 min: the second settle waits"},
		{65 * time.Second, 60<<20 + 10*kib, settle, "the first idle tick after 1 min"},
		{70 * time.Second, 60<<20 + 20*kib, none, "settled twice; nothing to trim"},
		{99 * time.Hour, 60<<20 + 30*kib, none, "never a third settle"},
	}
	for _, s := range steps {
		if got := k.tick(s.age, s.allocated); got != s.want {
			t.Errorf("at %s, %d KiB: %v, want %v (%s)", s.age, s.allocated/kib, got, s.want, s.why)
		}
	}
}

func TestABusyStartSettlesLater(t *testing.T) {
	var k keeper
	if got := k.tick(5*time.Second, 10<<20); got != none {
		t.Fatalf("busy at 5 s: %v", got)
	}
	if got := k.tick(10*time.Second, 10<<20+1); got != settle {
		t.Fatalf("first idle tick: %v", got)
	}
}

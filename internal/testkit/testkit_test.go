package testkit

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// fatalTB records a Fatal and ends its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = args[0].(string)
	runtime.Goexit()
}

// fatalOf runs fn on its own goroutine and returns the Fatal message it
// ended with ("" when it returned).
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	n := 0
	msg := fatalOf(t, func(tb testing.TB) {
		WaitFor(tb, 10*time.Second, "the third look", func() bool { n++; return n == 3 })
	})
	if msg != "" || n != 3 {
		t.Errorf("failed with %q after %d looks, want success at the third", msg, n)
	}
}

func TestWaitForFailsAtTheDeadline(t *testing.T) {
	start := time.Now()
	msg := fatalOf(t, func(tb testing.TB) {
		WaitFor(tb, 30*time.Millisecond, "never", func() bool { return false })
	})
	if msg != "timed out after 30ms waiting for never" {
		t.Errorf("message %q", msg)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("gave up after %s, before the deadline", el)
	}
}

func TestWaitForReportSaysWhatWasSeen(t *testing.T) {
	last := 0
	msg := fatalOf(t, func(tb testing.TB) {
		WaitForReport(tb, 20*time.Millisecond, "seven", func() bool { last = 6; return false },
			func() string { return "last saw " + strconv.Itoa(last) })
	})
	if msg != "timed out after 20ms waiting for seven\nlast saw 6" {
		t.Errorf("message %q", msg)
	}
}

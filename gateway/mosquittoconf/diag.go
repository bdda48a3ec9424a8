package mosquittoconf

import (
	"errors"
	"strconv"
)

// Diagnostic is one error or warning about a conf file, placed at the
// line that caused it.
type Diagnostic struct {
	Pos     Pos
	Option  string
	Message string
	Warning bool
}

// Error formats the diagnostic as "FILE:LINE: option: message", leaving
// out the line or the option when there is none (an unreadable file).
func (d Diagnostic) Error() string {
	s := d.Pos.String()
	if d.Option != "" {
		s += ": " + d.Option
	}
	return s + ": " + d.Message
}

// String formats a position as FILE:LINE, or FILE when the line is unknown.
func (p Pos) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Diagnostics are everything found wrong with a conf file. Errors stop
// the broker from starting; warnings do not.
type Diagnostics struct {
	Errors   []Diagnostic
	Warnings []Diagnostic
}

// OK reports whether there are no errors.
func (ds Diagnostics) OK() bool { return len(ds.Errors) == 0 }

// Err returns nil when there are no errors, otherwise an error whose text
// lists every error, one per line. errors.As finds each Diagnostic in it.
func (ds Diagnostics) Err() error {
	if len(ds.Errors) == 0 {
		return nil
	}
	errs := make([]error, len(ds.Errors))
	for i, d := range ds.Errors {
		errs[i] = d
	}
	return errors.Join(errs...)
}

func (ds *Diagnostics) errorf(pos Pos, option, msg string) {
	ds.Errors = append(ds.Errors, Diagnostic{Pos: pos, Option: option, Message: msg})
}

func (ds *Diagnostics) warnf(pos Pos, option, msg string) {
	ds.Warnings = append(ds.Warnings, Diagnostic{Pos: pos, Option: option, Message: msg, Warning: true})
}

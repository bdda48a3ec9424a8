// Package mosquittoconf is the adapter between the mosquitto.conf format and
// the gateway's own config model (Config).
//
// The box's owners already know mosquitto.conf, so the broker reads that
// file rather than a format of our own. Two layers keep the console honest:
// a Document keeps every byte of the file (comments, blank lines, order,
// CRLF endings) so an edit from the console changes only the lines it
// means to; and Check/Load turn the text into a Config, with every mistake
// reported as "FILE:LINE: option: reason" and nothing applied while any
// error remains.
//
// The rules follow Mosquitto 2.x: options are matched by exact name, a
// listener's options follow its `listener` line, bridge options follow a
// `connection` line, include_dir is read only from the main file. Where
// Mosquitto is needlessly harsh the parser is kinder, never looser about
// meaning: words may be separated by tabs as well as spaces, an indented
// `#` line is a comment, and a UTF-8 byte order mark is ignored.
package mosquittoconf

import (
	"bytes"
	"strings"
)

// Line is one line of a conf file, kept byte for byte. Option and the
// words after it are derived from Raw; Raw and EOL are the truth.
type Line struct {
	Num int    // 1-based line number
	Raw string // the line's text without its line ending
	EOL string // "\n", "\r\n", or "" for a last line without a newline

	// Option is the line's first word; "" for a blank line or a comment.
	Option string
	// Args are the words after the option, split on spaces and tabs. A
	// word starting with '#' and everything after it is a trailing
	// comment for options that take fixed words (see Words).
	Args []string
	// Rest is everything after the option with blanks trimmed at both
	// ends: the value of options that take the rest of the line, such as
	// password_file (a path may contain spaces).
	Rest string
}

// IsOption reports whether the line sets an option (it is not blank and
// not a comment).
func (l Line) IsOption() bool { return l.Option != "" }

// Words returns Args up to the first word that starts with '#', which
// begins a trailing comment as Mosquitto reads fixed-word options.
func (l Line) Words() []string {
	for i, a := range l.Args {
		if strings.HasPrefix(a, "#") {
			if i == 0 {
				return nil
			}
			return l.Args[:i]
		}
	}
	return l.Args
}

// Document is a conf file as lines. For a document nobody changed, Bytes
// gives back exactly the bytes it was parsed from, whatever they were.
type Document struct {
	Name  string // file name used in messages
	Lines []Line
}

// ParseDocument splits data into lines and tokenises each one. It never
// fails: judging the lines is Check's work, so that even a file full of
// mistakes can be shown and edited line by line.
func ParseDocument(name string, data []byte) *Document {
	d := &Document{Name: name}
	for len(data) > 0 {
		var raw, eol string
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, eol = string(data[:i]), "\n"
			if strings.HasSuffix(raw, "\r") {
				raw, eol = raw[:len(raw)-1], "\r\n"
			}
			data = data[i+1:]
		} else {
			raw = string(data)
			data = nil
		}
		d.Lines = append(d.Lines, tokenise(len(d.Lines)+1, raw, eol))
	}
	return d
}

// Bytes returns the document's text: every line and its own line ending.
func (d *Document) Bytes() []byte {
	n := 0
	for _, l := range d.Lines {
		n += len(l.Raw) + len(l.EOL)
	}
	b := make([]byte, 0, n)
	for _, l := range d.Lines {
		b = append(b, l.Raw...)
		b = append(b, l.EOL...)
	}
	return b
}

const byteOrderMark = "\ufeff"

func isBlank(r rune) bool { return r == ' ' || r == '\t' }

// tokenise reads one line as Mosquitto does: the first word is the
// option, the remaining words its arguments.
func tokenise(num int, raw, eol string) Line {
	l := Line{Num: num, Raw: raw, EOL: eol}
	s := raw
	if num == 1 {
		s = strings.TrimPrefix(s, byteOrderMark)
	}
	s = strings.TrimRight(s, "\r")
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return l
	}
	opt, rest := s, ""
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		opt, rest = s[:i], s[i:]
	}
	l.Option = opt
	if args := strings.FieldsFunc(rest, isBlank); len(args) > 0 {
		l.Args = args
	}
	l.Rest = strings.Trim(rest, " \t")
	return l
}

// eolStyle is the line ending most lines of d use, for lines it adds.
func (d *Document) eolStyle() string {
	crlf, lf := 0, 0
	for _, l := range d.Lines {
		switch l.EOL {
		case "\r\n":
			crlf++
		case "\n":
			lf++
		}
	}
	if crlf > lf {
		return "\r\n"
	}
	return "\n"
}

// renumber sets Num after lines were added or removed.
func (d *Document) renumber() {
	for i := range d.Lines {
		d.Lines[i].Num = i + 1
	}
}

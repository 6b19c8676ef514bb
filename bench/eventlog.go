package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// eventLog writes a member's event log: one JSON object a line, each
// line with one write system call on a file opened for appending, so a
// line is on its way to the file as soon as the event happened and a
// killed process loses nothing it wrote. Lines are formatted by appending
// bytes to a reused buffer, without fmt or reflection: the delivery
// handler writes one per message.
//
// begin locks the log and starts a line with its timestamp; the caller
// appends the rest of the object (from the comma after "t") and hands the
// buffer to end, which writes it and unlocks. The timestamp is taken
// under the lock, so the lines of a file are in the order of their "t".
type eventLog struct {
	mu     sync.Mutex
	f      *os.File // nil: events are dropped
	buf    []byte
	err    error // the first write error
	failed func(error)
}

// openEventLog opens path for appending, creating it if needed. An empty
// path gives a log that writes nothing. failed is called (once, under
// the log's lock) with the first write error.
func openEventLog(path string, failed func(error)) (*eventLog, error) {
	l := &eventLog{buf: make([]byte, 0, 512), failed: failed}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log: %w", err)
	}
	l.f = f
	return l, nil
}

func (l *eventLog) begin() []byte {
	l.mu.Lock()
	b := append(l.buf[:0], `{"t":`...)
	return strconv.AppendInt(b, time.Now().UnixNano(), 10)
}

// end writes the line in b (without its closing brace and newline) and
// unlocks the log.
func (l *eventLog) end(b []byte) { l.endAlso(b, nil) }

// endAlso is end that also writes the same line to also (when not nil),
// under also's lock, before unlocking l: the line's "t" is the same in
// both files, and the lines of one log keep their order in also.
func (l *eventLog) endAlso(b []byte, also *eventLog) {
	b = append(b, "}\n"...)
	l.write(b)
	if also != nil {
		also.mu.Lock()
		also.write(b)
		also.mu.Unlock()
	}
	l.buf = b
	l.mu.Unlock()
}

// write writes a whole line; l is locked.
func (l *eventLog) write(line []byte) {
	if l.f == nil || l.err != nil {
		return
	}
	if _, err := l.f.Write(line); err != nil {
		l.err = err
		if l.failed != nil {
			l.failed(err)
		}
	}
}

// Err returns the first write error.
func (l *eventLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *eventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// appendJSONString appends s as a JSON string. Member IDs and message IDs
// take the fast path; anything else (a zone in an IPv6 address, a
// corrupted payload) is escaped by the standard encoder.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONStrings appends a JSON array of strings.
func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

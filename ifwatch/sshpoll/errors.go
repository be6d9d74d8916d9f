package sshpoll

import (
	"errors"
	"fmt"
)

// Kind says which step of a poll failed. Every kind is a source error:
// the collector could not tell, which is never the same as an exporter
// being down.
type Kind string

// The kinds of source error; they are also the result label of the
// polls metric.
const (
	// KindUnreachable: no TCP connection, no SSH handshake, or a timeout
	// or a dropped connection before login.
	KindUnreachable Kind = "unreachable"
	// KindHostKey: the collector's host key is not in known_hosts, or
	// differs from it (which may be an attack).
	KindHostKey Kind = "host_key"
	// KindAuth: the collector refused the login, or no key could be
	// offered (agent unreachable).
	KindAuth Kind = "auth"
	// KindMissing: the stats file does not exist.
	KindMissing Kind = "missing"
	// KindRead: the SFTP session, the open, the stat or the read failed
	// (permission denied, not a regular file, connection lost).
	KindRead Kind = "read"
	// KindTooLarge: the file is larger than max_file_size.
	KindTooLarge Kind = "too_large"
	// KindParse: the file as a whole does not parse (no header, a
	// missing column, too many rows). Bad rows alone are not an error.
	KindParse Kind = "parse"
)

// retryable reports whether another attempt may succeed within a poll.
func (k Kind) retryable() bool { return k == KindUnreachable || k == KindRead }

// SourceError is the error of a failed poll.
type SourceError struct {
	Collector string
	Kind      Kind
	Err       error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("sshpoll: collector %s: %s: %v", e.Collector, e.Kind, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// KindOf returns the kind of a poll's error, or "" for nil or an error
// that is not a *SourceError.
func KindOf(err error) Kind {
	var se *SourceError
	if errors.As(err, &se) {
		return se.Kind
	}
	return ""
}

// failure is the error of one attempt, before it is given the
// collector's name.
type failure struct {
	kind Kind
	err  error
}

func fail(k Kind, format string, args ...any) *failure {
	return &failure{kind: k, err: fmt.Errorf(format, args...)}
}

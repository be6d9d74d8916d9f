package ifwatch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// FileLedger is a durable Ledger in one append-only file of JSON lines:
// every change is written and synced before it is applied, and Open
// replays the file. It is what a collector uses until the ledger moves
// into the flow store (DuckDB or ClickHouse); the file is small (one line
// per outage start, end and new key).
type FileLedger struct {
	mu   sync.Mutex
	mem  *MemLedger
	f    *os.File
	path string
}

var _ Ledger = (*FileLedger)(nil)

// ledgerOp is one line of the file.
type ledgerOp struct {
	Op       string     `json:"op"` // open, close, keys
	Outage   *Outage    `json:"outage,omitempty"`
	ID       OutageID   `json:"id,omitempty"`
	End      time.Time  `json:"end,omitzero"`
	ClosedAt time.Time  `json:"closed_at,omitzero"`
	Keys     []KnownKey `json:"keys,omitempty"`
}

// OpenFileLedger replays the file at path (created when missing). A torn
// last line (a crash mid-write) is dropped; any other bad line is an
// error that names it.
func OpenFileLedger(path string) (*FileLedger, error) {
	mem := NewMemLedger()
	ctx := context.Background()
	if data, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		n, good := 0, 0
		for sc.Scan() {
			n++
			var op ledgerOp
			if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
				if !hasLineAfter(data, good) {
					break // torn last line
				}
				return nil, fmt.Errorf("ifwatch ledger %s:%d: %v", path, n, err)
			}
			if err := replay(ctx, mem, op); err != nil {
				return nil, fmt.Errorf("ifwatch ledger %s:%d: %v", path, n, err)
			}
			good += len(sc.Bytes()) + 1
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("ifwatch ledger %s: %v", path, err)
		}
		if good < len(data) { // drop the torn tail before appending
			if err := os.Truncate(path, int64(good)); err != nil {
				return nil, err
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &FileLedger{mem: mem, f: f, path: path}, nil
}

func hasLineAfter(data []byte, off int) bool {
	for i := off; i < len(data); i++ {
		if data[i] == '\n' {
			return i+1 < len(data)
		}
	}
	return false
}

func replay(ctx context.Context, mem *MemLedger, op ledgerOp) error {
	switch op.Op {
	case "open":
		if op.Outage == nil {
			return errors.New("open without outage")
		}
		got, err := mem.Open(ctx, *op.Outage)
		if err == nil && got.ID != op.Outage.ID {
			return fmt.Errorf("outage id %d replayed as %d", op.Outage.ID, got.ID)
		}
		return err
	case "close":
		return mem.Close(ctx, op.ID, op.End, op.ClosedAt)
	case "keys":
		return mem.AddKeys(ctx, op.Keys)
	}
	return fmt.Errorf("unknown op %q", op.Op)
}

// write appends op and syncs. l.mu is held.
func (l *FileLedger) write(op ledgerOp) error {
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("ifwatch ledger %s: %w", l.path, err)
	}
	return l.f.Sync()
}

// Open implements Ledger.
func (l *FileLedger) Open(ctx context.Context, o Outage) (Outage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	got, err := l.mem.Open(ctx, o)
	if err != nil {
		return got, err
	}
	if err := l.write(ledgerOp{Op: "open", Outage: &got}); err != nil {
		// Not durable: undo in memory so that memory and file agree.
		l.mem.undoOpen(got.ID)
		return Outage{}, err
	}
	return got, nil
}

// Close implements Ledger.
func (l *FileLedger) Close(ctx context.Context, id OutageID, end, closedAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.mem.checkClose(id, end); err != nil {
		return err
	}
	if err := l.write(ledgerOp{Op: "close", ID: id, End: end, ClosedAt: closedAt}); err != nil {
		return err
	}
	return l.mem.Close(ctx, id, end, closedAt)
}

// Overlapping implements Ledger.
func (l *FileLedger) Overlapping(ctx context.Context, from, to time.Time) ([]Outage, error) {
	return l.mem.Overlapping(ctx, from, to)
}

// OpenOutages implements Ledger.
func (l *FileLedger) OpenOutages(ctx context.Context) ([]Outage, error) {
	return l.mem.OpenOutages(ctx)
}

// AddKeys implements Ledger. Only keys new to the ledger (or seen
// earlier than recorded) are written.
func (l *FileLedger) AddKeys(ctx context.Context, keys []KnownKey) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := l.mem.newKeys(keys)
	if len(fresh) == 0 {
		return nil
	}
	if err := l.mem.AddKeys(ctx, fresh); err != nil {
		return err
	}
	return l.write(ledgerOp{Op: "keys", Keys: fresh})
}

// Keys implements Ledger.
func (l *FileLedger) Keys(ctx context.Context) ([]KnownKey, error) { return l.mem.Keys(ctx) }

// CloseFile closes the file.
func (l *FileLedger) CloseFile() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// undoOpen removes the outage Open just added (the last one).
func (l *MemLedger) undoOpen(id OutageID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int(id) != len(l.outages) {
		return
	}
	delete(l.open, l.outages[id-1].Key)
	l.outages = l.outages[:id-1]
}

// checkClose tells whether Close(id, end) would succeed.
func (l *MemLedger) checkClose(id OutageID, end time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkCloseLocked(id, end)
}

// newKeys returns the keys AddKeys would change.
func (l *MemLedger) newKeys(keys []KnownKey) []KnownKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []KnownKey
	for _, k := range keys {
		if t, ok := l.keys[k.Key]; !ok || k.FirstSeen.Before(t) {
			out = append(out, k)
		}
	}
	return out
}

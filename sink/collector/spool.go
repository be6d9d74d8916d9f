package collector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// spool keeps batches that could not be delivered at once, one file per
// batch, holding the encoded request body (the batch id is inside it, and
// in the name, so a retry after a lost acknowledgement is recognised as a
// duplicate).
//
// A file is named SEQ-PART-RECORDS-BATCHID.batch: SEQ is 16 hex digits
// that grow with each batch, so that the oldest is sent first; PART is
// empty, or a string of 0s and 1s for the halves of a batch the collector
// found too large (the halves of SEQ-P- are SEQ-P0- and SEQ-P1-, which sort
// in place of their parent). A file is written to a temporary name,
// fsync'd, renamed and the directory fsync'd, so that a crash leaves either
// the whole batch or nothing.
//
// Only the sender goroutine uses a spool, apart from the counters.
type spool struct {
	dir     string
	max     int64
	files   []spoolFile // oldest first
	seq     uint64      // next sequence number
	bytes   atomic.Int64
	records atomic.Int64
}

type spoolFile struct {
	seq     uint64
	part    string
	records int
	id      string
	size    int64
}

const spoolSuffix = ".batch"

func (f spoolFile) name() string {
	return fmt.Sprintf("%016x-%s-%d-%s%s", f.seq, f.part, f.records, f.id, spoolSuffix)
}

func parseSpoolName(name string) (spoolFile, bool) {
	base, ok := strings.CutSuffix(name, spoolSuffix)
	if !ok {
		return spoolFile{}, false
	}
	parts := strings.SplitN(base, "-", 4)
	if len(parts) != 4 || len(parts[0]) != 16 || strings.Trim(parts[1], "01") != "" || parts[3] == "" {
		return spoolFile{}, false
	}
	seq, err := strconv.ParseUint(parts[0], 16, 64)
	if err != nil {
		return spoolFile{}, false
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 0 {
		return spoolFile{}, false
	}
	return spoolFile{seq: seq, part: parts[1], records: n, id: parts[3]}, true
}

func compareSpoolFiles(a, b spoolFile) int {
	if a.seq != b.seq {
		if a.seq < b.seq {
			return -1
		}
		return 1
	}
	return strings.Compare(a.part, b.part)
}

// openSpool creates dir if needed, removes temporary files a crash left,
// and lists the batches waiting there. It returns the names of files it
// did not recognise, which it leaves alone.
func openSpool(dir string, maxBytes int64) (*spool, []string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("collector: spool_dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("collector: spool_dir: %w", err)
	}
	s := &spool{dir: dir, max: maxBytes}
	var unknown []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		f, ok := parseSpoolName(name)
		if !ok || !e.Type().IsRegular() {
			unknown = append(unknown, name)
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f.size = info.Size()
		s.files = append(s.files, f)
		s.bytes.Add(f.size)
		s.records.Add(int64(f.records))
		s.seq = max(s.seq, f.seq+1)
	}
	slices.SortFunc(s.files, compareSpoolFiles)
	return s, unknown, nil
}

func (s *spool) len() int { return len(s.files) }

// errSpoolFull means the batch would pass SpoolMaxBytes.
var errSpoolFull = errors.New("spool full")

// put appends a batch at the tail.
func (s *spool) put(b *batch) error {
	f := spoolFile{seq: s.seq, records: b.records, id: b.id}
	if err := s.write(f, b.body); err != nil {
		return err
	}
	s.seq++
	s.files = append(s.files, f)
	s.files[len(s.files)-1].size = int64(len(b.body))
	return nil
}

func (s *spool) write(f spoolFile, body []byte) error {
	if s.bytes.Load()+int64(len(body)) > s.max {
		return errSpoolFull
	}
	final := filepath.Join(s.dir, f.name())
	tmp := filepath.Join(s.dir, ".tmp-"+f.name())
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write(body)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	s.bytes.Add(int64(len(body)))
	s.records.Add(int64(f.records))
	return nil
}

// head reads the oldest batch.
func (s *spool) head() (*batch, error) {
	f := s.files[0]
	body, err := os.ReadFile(filepath.Join(s.dir, f.name()))
	if err != nil {
		return nil, err
	}
	return &batch{id: f.id, body: body, records: f.records, spooled: true}, nil
}

// removeHead deletes the oldest batch.
func (s *spool) removeHead() {
	f := s.files[0]
	s.files = s.files[1:]
	if err := os.Remove(filepath.Join(s.dir, f.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
		// Left behind, it would be sent again at the next start; the
		// collector recognises it as a duplicate.
		_ = err
	}
	s.bytes.Add(-f.size)
	s.records.Add(-int64(f.records))
}

// replaceHead writes the halves of the oldest batch in its place, then
// removes it. Halves are written even past SpoolMaxBytes: they replace a
// file of about their total size.
func (s *spool) replaceHead(halves [2]*batch) error {
	f := s.files[0]
	var hs [2]spoolFile
	for i, h := range halves {
		hs[i] = spoolFile{seq: f.seq, part: f.part + strconv.Itoa(i), records: h.records, id: h.id, size: int64(len(h.body))}
		saved := s.max
		s.max = 1<<63 - 1
		err := s.write(hs[i], h.body)
		s.max = saved
		if err != nil {
			if i == 1 {
				_ = os.Remove(filepath.Join(s.dir, hs[0].name()))
				s.bytes.Add(-hs[0].size)
				s.records.Add(-int64(hs[0].records))
			}
			return err
		}
	}
	s.removeHead()
	s.files = append(hs[:], s.files...)
	return nil
}

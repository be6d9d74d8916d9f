// Package statsfile parses the stats files that remote flow collectors
// write, such as a Stealthwatch Flow Collector's
// /lancope/var/sw/today/data/exporter_device_stats.txt: tab-separated, one
// header line, then one row per exporter (or per exporter and interface).
//
// Only a few columns matter to ifwatch: the exporter's address, when it
// was last active and its current NetFlow rate in bits per second. Which
// header names hold them is configurable (Columns), so that a
// per-interface file with an ifIndex column parses too. The parser does no
// I/O: bytes in, rows out. Bad rows are counted and skipped; a missing
// required column fails the whole file; memory is bounded by Limits.
package statsfile

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Columns maps the header names of a stats file to the fields ifwatch
// needs. Header names are matched without regard to case or surrounding
// blanks. Empty fields take the defaults of DefaultColumns, except
// IfIndex, which is optional.
type Columns struct {
	// Exporter names the column of the exporter's IP address. Default
	// "Exporter Address".
	Exporter string `yaml:"exporter"`
	// IfIndex names the column of the interface's SNMP ifIndex. Empty
	// (the default) means the file has one row per exporter, and rows
	// get ifIndex 0.
	IfIndex string `yaml:"ifindex"`
	// LastActive names the column of the last time the exporter sent
	// flow, in Unix epoch seconds. Default "Last Active".
	LastActive string `yaml:"last_active"`
	// BPS names the column of the current rate in bits per second.
	// Default "Current NetFlow bps".
	BPS string `yaml:"bps"`
}

// DefaultColumns returns the mapping of a Flow Collector's
// exporter_device_stats.txt.
func DefaultColumns() Columns {
	return Columns{
		Exporter:   "Exporter Address",
		LastActive: "Last Active",
		BPS:        "Current NetFlow bps",
	}
}

// Validate checks that the mapped header names are distinct.
func (c Columns) Validate() error {
	c = c.withDefaults()
	names := [nField]string{c.Exporter, c.IfIndex, c.LastActive, c.BPS}
	for i, a := range names {
		for j := i + 1; j < len(names); j++ {
			if a != "" && strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(names[j])) {
				return fmt.Errorf("statsfile: columns.%s and columns.%s both name %q; give each its own column", fieldKeys[i], fieldKeys[j], a)
			}
		}
	}
	return nil
}

// withDefaults fills the empty required names.
func (c Columns) withDefaults() Columns {
	d := DefaultColumns()
	if strings.TrimSpace(c.Exporter) == "" {
		c.Exporter = d.Exporter
	}
	if strings.TrimSpace(c.LastActive) == "" {
		c.LastActive = d.LastActive
	}
	if strings.TrimSpace(c.BPS) == "" {
		c.BPS = d.BPS
	}
	return c
}

// Limits bound the memory and work of one Parse. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// MaxFileSize is the largest file accepted, in bytes. Default 32 MiB.
	MaxFileSize int64 `yaml:"max_file_size"`
	// MaxRows is the most rows (good and bad) accepted. Default 200000.
	MaxRows int `yaml:"max_rows"`
	// MaxLineBytes is the longest line accepted; a longer data line is a
	// bad row, a longer header fails the file. Default 64 KiB.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// MaxBadSamples is how many bad rows are kept with their line
	// number and reason (all are counted). Default 5.
	MaxBadSamples int `yaml:"max_bad_samples"`
}

// DefaultLimits returns the default limits. A Flow Collector's file has
// one row of roughly 300 bytes per exporter, so they leave ample room.
func DefaultLimits() Limits {
	return Limits{
		MaxFileSize:   32 << 20,
		MaxRows:       200_000,
		MaxLineBytes:  64 << 10,
		MaxBadSamples: 5,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxRows <= 0 {
		l.MaxRows = d.MaxRows
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = d.MaxLineBytes
	}
	if l.MaxBadSamples <= 0 {
		l.MaxBadSamples = d.MaxBadSamples
	}
	return l
}

// Row is one exporter (or exporter and interface) of a stats file.
type Row struct {
	// Exporter is the exporter's address; an IPv4-mapped IPv6 address
	// is unmapped and a zone dropped.
	Exporter netip.Addr
	// IfIndex is the interface, 0 when the file has no ifIndex column.
	IfIndex uint32
	// LastActive is when the exporter last sent flow, in UTC; the zero
	// time when the file says 0 or leaves it empty (never active).
	LastActive time.Time
	// BPS is the current rate in bits per second, finite and >= 0.
	BPS float64
}

// BadRow tells why a row was skipped.
type BadRow struct {
	Line   int // 1-based line number in the file
	Reason string
}

func (b BadRow) String() string { return fmt.Sprintf("line %d: %s", b.Line, b.Reason) }

// Result is a parsed file.
type Result struct {
	// Rows are the good rows, in file order. Rows for the same exporter
	// (and ifIndex) are all kept; the file should not have them.
	Rows []Row
	// BadRows counts the skipped rows.
	BadRows int
	// BadSamples are the first few bad rows (Limits.MaxBadSamples).
	BadSamples []BadRow
}

// Errors for a whole file. A *MissingColumnError is returned for a
// required column absent from the header.
var (
	ErrTooLarge    = errors.New("statsfile: file larger than max_file_size")
	ErrTooManyRows = errors.New("statsfile: more rows than max_rows")
	ErrNoHeader    = errors.New("statsfile: no header line (empty file?)")
	ErrLongHeader  = errors.New("statsfile: header line longer than max_line_bytes")
)

// MissingColumnError says that a required column is not in the header.
type MissingColumnError struct {
	Field  string // the Columns field: exporter, ifindex, last_active or bps
	Column string // the header name looked for
}

func (e *MissingColumnError) Error() string {
	return fmt.Sprintf("statsfile: column %q (%s) not in the header; set columns.%s to the header name the file uses", e.Column, e.Field, e.Field)
}

// DuplicateColumnError says that a mapped column appears twice in the
// header, so the parser cannot tell which one to read.
type DuplicateColumnError struct {
	Field  string
	Column string
}

func (e *DuplicateColumnError) Error() string {
	return fmt.Sprintf("statsfile: column %q (%s) appears more than once in the header", e.Column, e.Field)
}

// Parser parses stats files with one column mapping and set of limits.
// It holds no state between calls and is safe for concurrent use.
type Parser struct {
	cols   Columns
	limits Limits
}

// New returns a parser; empty columns and zero limits take the defaults.
func New(cols Columns, limits Limits) *Parser {
	return &Parser{cols: cols.withDefaults(), limits: limits.withDefaults()}
}

// Columns is the column mapping in use, defaults filled.
func (p *Parser) Columns() Columns { return p.cols }

// Limits are the limits in use, defaults filled.
func (p *Parser) Limits() Limits { return p.limits }

// Parse parses data with the default columns and limits.
func Parse(data []byte) (*Result, error) { return New(Columns{}, Limits{}).Parse(data) }

// maxEpoch is the largest Last Active accepted, the start of year 10000,
// so that the time stays formattable.
const maxEpoch = 253402300800

// Parse parses one file. A UTF-8 byte order mark, CRLF line ends, blank
// lines and double quotes around a field are tolerated; quoted fields
// may not contain tabs or newlines. It returns an error, and no rows, for
// a file past the limits, without a header, or without a required
// column.
func (p *Parser) Parse(data []byte) (*Result, error) {
	if int64(len(data)) > p.limits.MaxFileSize {
		return nil, fmt.Errorf("%w (%d > %d bytes)", ErrTooLarge, len(data), p.limits.MaxFileSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))

	lineNo := 0
	next := func() ([]byte, bool) {
		if len(data) == 0 {
			return nil, false
		}
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		return bytes.TrimSuffix(line, []byte("\r")), true
	}

	// The header is the first line that is not blank.
	var header []byte
	for {
		line, ok := next()
		if !ok {
			return nil, ErrNoHeader
		}
		if len(line) > p.limits.MaxLineBytes {
			return nil, fmt.Errorf("%w (line %d, %d bytes)", ErrLongHeader, lineNo, len(line))
		}
		if len(bytes.TrimSpace(line)) > 0 {
			header = line
			break
		}
	}
	idx, err := p.columnIndexes(header)
	if err != nil {
		return nil, err
	}
	need := 0 // fields a row must have
	for _, i := range idx {
		need = max(need, i+1)
	}

	res := &Result{}
	var fields [nField][]byte
	rows := 0
	for {
		line, ok := next()
		if !ok {
			break
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if rows++; rows > p.limits.MaxRows {
			return nil, fmt.Errorf("%w (%d)", ErrTooManyRows, p.limits.MaxRows)
		}
		if len(line) > p.limits.MaxLineBytes {
			res.bad(p.limits, lineNo, fmt.Sprintf("line of %d bytes is longer than max_line_bytes %d", len(line), p.limits.MaxLineBytes))
			continue
		}
		if n := pick(line, idx, &fields); n < need {
			res.bad(p.limits, lineNo, fmt.Sprintf("%d fields, the header has the columns up to field %d", n, need))
			continue
		}
		r, reason := p.row(&fields)
		if reason != "" {
			res.bad(p.limits, lineNo, reason)
			continue
		}
		res.Rows = append(res.Rows, r)
	}
	return res, nil
}

func (r *Result) bad(l Limits, line int, reason string) {
	r.BadRows++
	if len(r.BadSamples) < l.MaxBadSamples {
		r.BadSamples = append(r.BadSamples, BadRow{Line: line, Reason: reason})
	}
}

// The fields read from each row, as indexes into an array.
const (
	fExporter = iota
	fIfIndex
	fLastActive
	fBPS
	nField
)

var fieldKeys = [nField]string{"exporter", "ifindex", "last_active", "bps"}

// columnIndexes finds each mapped column in the header; -1 for an
// unmapped ifIndex.
func (p *Parser) columnIndexes(header []byte) ([nField]int, error) {
	names := [nField]string{p.cols.Exporter, p.cols.IfIndex, p.cols.LastActive, p.cols.BPS}
	idx := [nField]int{-1, -1, -1, -1}
	col := 0
	for field := range bytes.SplitSeq(header, []byte("\t")) {
		name := unquote(field)
		for f, want := range names {
			if want == "" || !strings.EqualFold(string(name), strings.TrimSpace(want)) {
				continue
			}
			if idx[f] >= 0 {
				return idx, &DuplicateColumnError{Field: fieldKeys[f], Column: want}
			}
			idx[f] = col
		}
		col++
	}
	for f, want := range names {
		if want != "" && idx[f] < 0 {
			return idx, &MissingColumnError{Field: fieldKeys[f], Column: want}
		}
	}
	return idx, nil
}

// pick stores in out the fields of line at the indexes idx (unmapped
// ones, -1, are left nil) and returns how many fields the line has, up to
// the largest index needed plus one. It does not allocate.
func pick(line []byte, idx [nField]int, out *[nField][]byte) int {
	need := 0
	for _, i := range idx {
		need = max(need, i+1)
	}
	*out = [nField][]byte{}
	col := 0
	for col < need {
		field := line
		end := bytes.IndexByte(line, '\t')
		if end >= 0 {
			field, line = line[:end], line[end+1:]
		}
		for f, i := range idx {
			if i == col {
				out[f] = field
			}
		}
		col++
		if end < 0 {
			break
		}
	}
	return col
}

// unquote trims blanks and one pair of surrounding double quotes, with
// "" inside standing for one quote.
func unquote(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
		if bytes.Contains(b, []byte(`""`)) {
			b = bytes.ReplaceAll(b, []byte(`""`), []byte(`"`))
		}
		b = bytes.TrimSpace(b)
	}
	return b
}

// row converts the picked fields; a non-empty reason means a bad row.
func (p *Parser) row(fields *[nField][]byte) (Row, string) {
	var r Row
	ex := unquote(fields[fExporter])
	a, err := netip.ParseAddr(string(ex))
	if err != nil {
		return r, fmt.Sprintf("%s: %q is not an IP address", p.cols.Exporter, clip(ex))
	}
	r.Exporter = a.WithZone("").Unmap()

	if p.cols.IfIndex != "" {
		s := unquote(fields[fIfIndex])
		n, err := strconv.ParseUint(string(s), 10, 32)
		if err != nil {
			return r, fmt.Sprintf("%s: %q is not an ifIndex (0-4294967295)", p.cols.IfIndex, clip(s))
		}
		r.IfIndex = uint32(n)
	}

	s := unquote(fields[fLastActive])
	if len(s) > 0 && !(len(s) == 1 && s[0] == '0') {
		v, ok := number(s)
		if !ok || v < 0 || v >= maxEpoch {
			return r, fmt.Sprintf("%s: %q is not epoch seconds", p.cols.LastActive, clip(s))
		}
		if v >= 1 { // below one second is 0, never active
			sec, frac := math.Modf(v)
			r.LastActive = time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC()
		}
	}

	s = unquote(fields[fBPS])
	v, ok := number(s)
	if !ok || v < 0 {
		return r, fmt.Sprintf("%s: %q is not a rate in bits per second", p.cols.BPS, clip(s))
	}
	r.BPS = v + 0 // -0 becomes 0
	return r, ""
}

// number parses a plain decimal number (digits, one point, an optional
// exponent), refusing the hexadecimal, infinite and NaN forms that
// strconv.ParseFloat also takes.
func number(s []byte) (float64, bool) {
	if len(s) == 0 || len(s) > 64 {
		return 0, false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// clip shortens a field quoted in a reason, so that a huge field does
// not make a huge message.
func clip(b []byte) string {
	const n = 40
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

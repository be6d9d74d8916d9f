// Package netflow decodes NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX
// (RFC 7011) datagrams into flow.Record values. It does no I/O: bytes in,
// records out.
//
// Templates are cached per exporter address, observation domain (the v9
// source ID), protocol version and template ID. Data that arrives before its
// template is held, bounded in count, bytes and time, and decoded when the
// template arrives; what expires unheard is counted. Sampling rates come from
// the v5 header, from fields of the data record itself, or from options data
// (IEs 34, 35, 48, 49, 50, 302, 305, 306) matched by sampler ID; a rate that
// no source gives stays 0, meaning unknown.
package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

// Config bounds the decoder's memory. The zero value of a field means its
// default.
type Config struct {
	// MaxTemplates bounds the template cache. Default 65536.
	MaxTemplates int `yaml:"max_templates"`
	// HoldTime is how long data waits for its template. Default 10m: many
	// exporters resend templates only every few minutes.
	HoldTime time.Duration `yaml:"hold_time"`
	// HoldSets bounds how many data sets wait. Default 16384.
	HoldSets int `yaml:"hold_sets"`
	// HoldBytes bounds the bytes of data sets that wait. Default 32 MiB.
	HoldBytes int `yaml:"hold_bytes"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{MaxTemplates: 65536, HoldTime: 10 * time.Minute, HoldSets: 16384, HoldBytes: 32 << 20}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxTemplates <= 0 {
		c.MaxTemplates = d.MaxTemplates
	}
	if c.HoldTime <= 0 {
		c.HoldTime = d.HoldTime
	}
	if c.HoldSets <= 0 {
		c.HoldSets = d.HoldSets
	}
	if c.HoldBytes <= 0 {
		c.HoldBytes = d.HoldBytes
	}
	return c
}

// Stats are the decoder's counters since New.
type Stats struct {
	Datagrams      uint64
	Flows          uint64
	OptionsRecords uint64
	Errors         uint64
	// TemplatesLearned counts template records, new or refreshed.
	TemplatesLearned   uint64
	TemplatesChanged   uint64
	TemplatesWithdrawn uint64
	TemplatesEvicted   uint64
	// HeldSets counts data sets that waited for their template; HeldDecoded
	// those decoded when it came, HeldExpired those whose template never
	// came in time, HeldDropped those refused because the hold was full.
	HeldSets    uint64
	HeldDecoded uint64
	HeldExpired uint64
	HeldDropped uint64
	// HeldNow is the number of data sets waiting now.
	HeldNow int
	// LostFlows and LostDatagrams come from the export sequence numbers:
	// v5 and IPFIX count flows, v9 counts datagrams.
	LostFlows     uint64
	LostDatagrams uint64
}

// Decoder decodes NetFlow v5, v9 and IPFIX. It is safe for concurrent use.
type Decoder struct {
	cfg       Config
	templates *TemplateCache
	seqs      *seq.Tracker
	sampling  *samplingTable
	held      *holdQueue
	records   sync.Pool

	datagrams, flows, options, errors  atomic.Uint64
	lostFlows, lostDatagrams           atomic.Uint64
	heldSets, heldDecoded, heldExpired atomic.Uint64
	heldDropped                        atomic.Uint64
}

// New returns a decoder. seqs may be nil, which turns loss tracking off.
func New(cfg Config, seqs *seq.Tracker) *Decoder {
	cfg = cfg.withDefaults()
	d := &Decoder{
		cfg:       cfg,
		templates: NewTemplateCache(cfg.MaxTemplates),
		seqs:      seqs,
		sampling:  newSamplingTable(),
		held:      newHoldQueue(cfg),
	}
	d.records.New = func() any { return new(scratch) }
	return d
}

// Templates returns the template cache, to persist or inspect it.
func (d *Decoder) Templates() *TemplateCache { return d.templates }

// Stats returns the decoder's counters.
func (d *Decoder) Stats() Stats {
	ts := d.templates.stats()
	return Stats{
		Datagrams:          d.datagrams.Load(),
		Flows:              d.flows.Load(),
		OptionsRecords:     d.options.Load(),
		Errors:             d.errors.Load(),
		TemplatesLearned:   ts.learned,
		TemplatesChanged:   ts.changed,
		TemplatesWithdrawn: ts.withdrawn,
		TemplatesEvicted:   ts.evicted,
		HeldSets:           d.heldSets.Load(),
		HeldDecoded:        d.heldDecoded.Load(),
		HeldExpired:        d.heldExpired.Load(),
		HeldDropped:        d.heldDropped.Load(),
		HeldNow:            d.held.len(),
		LostFlows:          d.lostFlows.Load(),
		LostDatagrams:      d.lostDatagrams.Load(),
	}
}

// scratch is what one Decode call works in. It is pooled, so that
// steady-state decoding allocates nothing.
type scratch struct {
	rec flow.Record
	hdr msgHeader
	// learned lists the templates the datagram taught.
	learned []TemplateKey
	// tmpl caches the datagram's template lookups by set ID (exporter,
	// domain and version are the header's): a datagram often holds
	// several data sets of one template. A template set empties it.
	tmpl tmplCache
}

// tmplCache is a datagram's few most recent template lookups.
type tmplCache struct {
	ids [4]uint16
	ts  [4]*Template
	n   int
}

func (c *tmplCache) get(id uint16) *Template {
	for i := 0; i < c.n; i++ {
		if c.ids[i] == id {
			return c.ts[i]
		}
	}
	return nil
}

func (c *tmplCache) put(id uint16, t *Template) {
	i := c.n
	if i == len(c.ids) {
		i = int(id) % len(c.ids) // full: replace one
	} else {
		c.n++
	}
	c.ids[i], c.ts[i] = id, t
}

func (c *tmplCache) reset() { *c = tmplCache{} }

// Sequence-stream protocol tags for seq.Key.Proto.
const (
	seqV5    = 5
	seqV9    = 9
	seqIPFIX = 10
)

// Version returns the NetFlow/IPFIX version of a datagram, or 0 when it is
// none of 5, 9 or 10.
func Version(data []byte) uint16 {
	if len(data) < 4 {
		return 0
	}
	switch v := binary.BigEndian.Uint16(data); v {
	case 5, 9, 10:
		return v
	}
	return 0
}

// Decode decodes one datagram received from exporter at time received,
// calling emit for each flow in datagram order; it also calls emit for
// held data that a template in this datagram releases. The record passed to
// emit is reused once emit returns. Flows decoded before a malformed part
// are emitted; the error then says what was wrong and where.
func (d *Decoder) Decode(exporter netip.Addr, received time.Time, data []byte, emit func(*flow.Record)) error {
	d.datagrams.Add(1)
	d.expire(received)
	sc := d.records.Get().(*scratch)
	defer d.records.Put(sc)
	var err error
	switch Version(data) {
	case 5:
		err = d.decodeV5(exporter, received, data, &sc.rec, emit)
	case 9:
		err = d.decodeV9(exporter, received, data, sc, emit)
	case 10:
		err = d.decodeIPFIX(exporter, received, data, sc, emit)
	default:
		err = fmt.Errorf("netflow: not NetFlow v5, v9 or IPFIX")
	}
	if err != nil {
		d.errors.Add(1)
	}
	return err
}

// Expire drops held data older than the hold time, as of now. Decode calls
// it too; a live receiver also calls it from a timer so that quiet
// exporters' data is counted as expired on time.
func (d *Decoder) Expire(now time.Time) { d.expire(now) }

func (d *Decoder) expire(now time.Time) {
	if n := d.held.expire(now); n > 0 {
		d.heldExpired.Add(uint64(n))
	}
}

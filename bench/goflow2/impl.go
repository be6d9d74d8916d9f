// Package goflow2bench compares netpulse's decoder with goflow2's on the
// same real-exporter captures (testdata/captures at the repository root).
//
// It is a module of its own so that netpulse never depends on goflow2. Three
// implementations decode the same datagrams:
//
//   - netpulse: decoder.Decoder, records handed to a callback.
//   - goflow2-decode: goflow2's decoders alone (netflowlegacy, netflow with
//     its basic template system, sflow), flows counted in the decoded
//     packets. This is less than goflow2 does for a flow: its decoded
//     packets are not yet flows with addresses, counters and times.
//   - goflow2-proto: what the goflow2 collector does for each datagram with
//     its default producer: the flow pipe (decode), the protobuf producer
//     with the default mapping, and the "bin" format (each flow message
//     marshalled as length-delimited protobuf), handed to a transport that
//     only counts. Its Prometheus wrappers and the network are left out.
//   - goflow2-json: the same with the "json" format, the goflow2 command's
//     default -format.
package goflow2bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/netsampler/goflow2/v2/format"
	_ "github.com/netsampler/goflow2/v2/format/binary" // registers "bin"
	_ "github.com/netsampler/goflow2/v2/format/json"   // registers "json"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/netsampler/goflow2/v2/utils"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

// Impl is one decoder under test. Decode handles one datagram; Counts says
// what came out since the last Reset.
type Impl interface {
	Decode(dg *capture.Datagram) error
	Counts() Counts
	Reset()
}

// Counts are what an implementation produced.
type Counts struct {
	// Flows counts flow records as exported: one per NetFlow/IPFIX data
	// record and per sFlow flow sample. It is the figure every
	// implementation is compared on.
	Flows int
	// Reverse counts the reverse halves of RFC 5103 biflows that netpulse
	// emits as records of their own (goflow2 has no such records).
	Reverse int
	// Counters counts sFlow interface-counter records (netpulse only:
	// goflow2's producer drops counter samples).
	Counters int
	// Errors counts datagrams whose decoding returned an error.
	Errors int
}

// Records is every record an implementation emitted.
func (c Counts) Records() int { return c.Flows + c.Reverse + c.Counters }

// Names of the implementations, as they appear in benchmark names.
const (
	NameNetpulse      = "netpulse"
	NameGoflow2Decode = "goflow2-decode"
	NameGoflow2Proto  = "goflow2-proto"
	NameGoflow2JSON   = "goflow2-json"
)

// New returns a fresh implementation by name.
func New(name string) (Impl, error) {
	switch name {
	case NameNetpulse:
		return NewNetpulse(), nil
	case NameGoflow2Decode:
		return NewGoflow2Decode(), nil
	case NameGoflow2Proto:
		return NewGoflow2Pipe("bin")
	case NameGoflow2JSON:
		return NewGoflow2Pipe("json")
	}
	return nil, fmt.Errorf("unknown implementation %q", name)
}

// Netpulse is netpulse's decoder with a counting callback.
type Netpulse struct {
	dec  *decoder.Decoder
	c    Counts
	emit func(*flow.Record)
}

// NewNetpulse returns netpulse's decoder with the default configuration.
func NewNetpulse() *Netpulse {
	n := &Netpulse{dec: decoder.New(decoder.DefaultConfig())}
	n.emit = func(r *flow.Record) {
		switch {
		case r.Kind == flow.KindCounters:
			n.c.Counters++
		case r.Reverse:
			n.c.Reverse++
		default:
			n.c.Flows++
		}
	}
	return n
}

// Decode implements Impl.
func (n *Netpulse) Decode(dg *capture.Datagram) error {
	err := n.dec.Decode(dg.Src.Addr(), dg.Time, dg.Payload, n.emit)
	if err != nil {
		n.c.Errors++
	}
	return err
}

// Counts implements Impl.
func (n *Netpulse) Counts() Counts { return n.c }

// Reset implements Impl; the decoder keeps its templates.
func (n *Netpulse) Reset() { n.c = Counts{} }

// Decoder returns the underlying decoder, for its stats.
func (n *Netpulse) Decoder() *decoder.Decoder { return n.dec }

// RawSet is a NetFlow v9/IPFIX data set that goflow2 could not decode
// because its template was unknown when it arrived.
type RawSet struct {
	Src        netip.AddrPort
	Version    uint16
	Domain     uint32
	TemplateID uint16
	Data       []byte
}

// Goflow2Decode is goflow2's decoders alone, with one basic template
// system per exporter address and port, as goflow2's flow pipe keeps them.
type Goflow2Decode struct {
	templates map[netip.AddrPort]netflow.NetFlowTemplateSystem
	c         Counts
	// OnRaw, when set, is called for each data set left undecoded for want
	// of its template.
	OnRaw func(RawSet)
}

// NewGoflow2Decode returns goflow2's decoders with empty template systems.
func NewGoflow2Decode() *Goflow2Decode {
	return &Goflow2Decode{templates: make(map[netip.AddrPort]netflow.NetFlowTemplateSystem)}
}

// Decode implements Impl. Flows are counted in whatever the decoder
// returned, error or not.
func (g *Goflow2Decode) Decode(dg *capture.Datagram) error {
	err := g.decode(dg)
	if err != nil {
		g.c.Errors++
	}
	return err
}

func (g *Goflow2Decode) decode(dg *capture.Datagram) error {
	p := dg.Payload
	if len(p) < 4 {
		return fmt.Errorf("short datagram")
	}
	buf := bytes.NewBuffer(p)
	if binary.BigEndian.Uint32(p) == 5 {
		var pkt sflow.Packet
		err := sflow.DecodeMessageVersion(buf, &pkt)
		for _, s := range pkt.Samples {
			switch s.(type) {
			case sflow.FlowSample, sflow.ExpandedFlowSample:
				g.c.Flows++
			}
		}
		return err
	}
	switch version := binary.BigEndian.Uint16(p); version {
	case 5:
		var pkt netflowlegacy.PacketNetFlowV5
		err := netflowlegacy.DecodeMessageVersion(buf, &pkt)
		g.c.Flows += len(pkt.Records)
		return err
	case 9, 10:
		ts := g.Templates(dg.Src)
		var v9 netflow.NFv9Packet
		var ipfix netflow.IPFIXPacket
		err := netflow.DecodeMessageVersion(buf, ts, &v9, &ipfix)
		sets, domain := v9.FlowSets, v9.SourceId
		if version == 10 {
			sets, domain = ipfix.FlowSets, ipfix.ObservationDomainId
		}
		for _, s := range sets {
			switch fs := s.(type) {
			case netflow.DataFlowSet:
				g.c.Flows += len(fs.Records)
			case netflow.RawFlowSet:
				if g.OnRaw != nil {
					g.OnRaw(RawSet{Src: dg.Src, Version: version, Domain: domain, TemplateID: fs.Id, Data: fs.Records})
				}
			}
		}
		return err
	}
	return fmt.Errorf("not NetFlow v5/v9, IPFIX or sFlow v5")
}

// Templates returns the template system of an exporter, creating it.
func (g *Goflow2Decode) Templates(src netip.AddrPort) netflow.NetFlowTemplateSystem {
	ts, ok := g.templates[src]
	if !ok {
		ts = netflow.CreateTemplateSystem()
		g.templates[src] = ts
	}
	return ts
}

// RawFlows decodes a raw set with the template goflow2 knows now and says
// how many flows it holds; ok is false when the template is still unknown.
// Options data sets hold no flows.
func (g *Goflow2Decode) RawFlows(r RawSet) (n int, ok bool) {
	t, err := g.Templates(r.Src).GetTemplate(r.Version, r.Domain, r.TemplateID)
	if err != nil {
		return 0, false
	}
	tr, isData := t.(netflow.TemplateRecord)
	if !isData {
		return 0, true
	}
	recs, _ := netflow.DecodeDataSet(r.Version, bytes.NewBuffer(r.Data), tr.Fields)
	return len(recs), true
}

// Counts implements Impl.
func (g *Goflow2Decode) Counts() Counts { return g.c }

// Reset implements Impl; templates stay.
func (g *Goflow2Decode) Reset() { g.c = Counts{} }

// countingTransport stands for goflow2's output: it counts messages and
// bytes and writes nothing.
type countingTransport struct {
	msgs, bytes int
}

func (t *countingTransport) Send(key, data []byte) error {
	t.msgs++
	t.bytes += len(data)
	return nil
}

// Goflow2Pipe is goflow2's collector path without the network: the auto
// (sFlow/NetFlow) flow pipe, the protobuf producer with the default
// mapping, and a format: "bin" (length-delimited protobuf) or "json".
type Goflow2Pipe struct {
	pipe   *utils.AutoFlowPipe
	sink   *countingTransport
	msg    utils.Message
	errors int
}

// NewGoflow2Pipe builds the pipe as goflow2's main does with no mapping
// file, -produce sample and -format formatName.
func NewGoflow2Pipe(formatName string) (*Goflow2Pipe, error) {
	var cfg *protoproducer.ProducerConfig // no mapping file: the defaults
	cfgm, err := cfg.Compile()
	if err != nil {
		return nil, err
	}
	prod, err := protoproducer.CreateProtoProducer(cfgm, protoproducer.CreateSamplingSystem)
	if err != nil {
		return nil, err
	}
	f, err := format.FindFormat(formatName)
	if err != nil {
		return nil, err
	}
	sink := &countingTransport{}
	pipe := utils.NewFlowPipe(&utils.PipeConfig{Format: f, Transport: sink, Producer: prod})
	return &Goflow2Pipe{pipe: pipe, sink: sink}, nil
}

// Decode implements Impl. The message struct is reused, as goflow2's UDP
// receiver takes it from a pool.
func (g *Goflow2Pipe) Decode(dg *capture.Datagram) error {
	g.msg = utils.Message{Src: dg.Src, Dst: dg.Dst, Payload: dg.Payload, Received: dg.Time}
	err := g.pipe.DecodeFlow(&g.msg)
	if err != nil {
		g.errors++
	}
	return err
}

// Counts implements Impl: flows are the messages that reached the
// transport.
func (g *Goflow2Pipe) Counts() Counts { return Counts{Flows: g.sink.msgs, Errors: g.errors} }

// Bytes is the protobuf output written since the last Reset.
func (g *Goflow2Pipe) Bytes() int { return g.sink.bytes }

// Reset implements Impl; templates and sampling rates stay.
func (g *Goflow2Pipe) Reset() { g.sink.msgs, g.sink.bytes, g.errors = 0, 0, 0 }

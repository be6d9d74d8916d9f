package tcpstats

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ParseBPF reads a precompiled classic BPF program in the form
// `tcpdump -ddd` prints: the instruction count, then "code jt jf k" for
// each instruction, separated by newlines or commas, e.g.
// "4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0". It checks what the
// kernel would otherwise refuse with a bare EINVAL: known opcodes, jumps
// that stay inside the program, and a return at the end.
func ParseBPF(text string) ([]bpf.RawInstruction, error) {
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ';' })
	var parts []string
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			parts = append(parts, f)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("filter_bpf: empty; give `tcpdump -ddd EXPR` output")
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > maxBPFInsns {
		return nil, fmt.Errorf("filter_bpf: first field %q: want the instruction count, 1 to %d", parts[0], maxBPFInsns)
	}
	if len(parts)-1 != n {
		return nil, fmt.Errorf("filter_bpf: count says %d instructions, %d follow", n, len(parts)-1)
	}
	prog := make([]bpf.RawInstruction, n)
	for i, p := range parts[1:] {
		f := strings.Fields(p)
		if len(f) != 4 {
			return nil, fmt.Errorf("filter_bpf: instruction %d %q: want \"code jt jf k\"", i, p)
		}
		var v [4]uint64
		for j, bits := range []int{16, 8, 8, 32} {
			if v[j], err = strconv.ParseUint(f[j], 10, bits); err != nil {
				// k may be written as a negative number for SKF_AD_OFF.
				if j == 3 {
					if s, serr := strconv.ParseInt(f[j], 10, 32); serr == nil {
						v[j], err = uint64(uint32(s)), nil
					}
				}
				if err != nil {
					return nil, fmt.Errorf("filter_bpf: instruction %d %q: field %d: %v", i, p, j+1, err)
				}
			}
		}
		prog[i] = bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
	}
	if err := checkBPF(prog); err != nil {
		return nil, fmt.Errorf("filter_bpf: %w", err)
	}
	return prog, nil
}

// checkBPF checks a program as the kernel's checker would, to give a
// useful message instead of EINVAL.
func checkBPF(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > maxBPFInsns {
		return fmt.Errorf("%d instructions: want 1 to %d", len(prog), maxBPFInsns)
	}
	for i, ri := range prog {
		in := ri.Disassemble()
		if _, unknown := in.(bpf.RawInstruction); unknown {
			return fmt.Errorf("instruction %d: unknown opcode %#x", i, ri.Op)
		}
		var skips []uint32
		switch in := in.(type) {
		case bpf.Jump:
			skips = []uint32{in.Skip}
		case bpf.JumpIf, bpf.JumpIfX:
			skips = []uint32{uint32(ri.Jt), uint32(ri.Jf)}
		case bpf.ALUOpConstant:
			if (in.Op == bpf.ALUOpDiv || in.Op == bpf.ALUOpMod) && in.Val == 0 {
				return fmt.Errorf("instruction %d: division by zero", i)
			}
		}
		for _, s := range skips {
			if uint64(i)+1+uint64(s) >= uint64(len(prog)) {
				return fmt.Errorf("instruction %d: jumps past the end", i)
			}
		}
	}
	switch prog[len(prog)-1].Disassemble().(type) {
	case bpf.RetA, bpf.RetConstant:
	default:
		return fmt.Errorf("the last instruction is not a return")
	}
	return nil
}

// cookedForSocket rewrites a program compiled for a Linux cooked link
// type (SLL or SLL2) for an AF_PACKET SOCK_DGRAM socket, which shows
// packets from the network header on, as libpcap's fix_program does for
// the "any" device: packet offsets move back by the cooked header's
// length, and loads of the header's own fields become the kernel's
// ancillary loads. A load of any other header byte cannot run in the
// kernel and is refused.
func cookedForSocket(prog []bpf.RawInstruction, lt LinkType) ([]bpf.RawInstruction, error) {
	var hdr uint32
	var anc map[uint32]bpf.Extension
	switch lt {
	case LinkLinuxSLL:
		hdr, anc = 16, map[uint32]bpf.Extension{14: bpf.ExtProto, 0: bpf.ExtType}
	case LinkLinuxSLL2:
		hdr, anc = 20, map[uint32]bpf.Extension{0: bpf.ExtProto, 4: bpf.ExtInterfaceIndex, 10: bpf.ExtType}
	default:
		return nil, fmt.Errorf("link type %d is not a cooked one", lt)
	}
	out := append([]bpf.RawInstruction(nil), prog...)
	for i, ri := range out {
		cls := ri.Op & 0x07
		if cls != unix.BPF_LD && cls != unix.BPF_LDX {
			continue
		}
		mode := ri.Op & 0xe0
		if mode != unix.BPF_ABS && mode != unix.BPF_IND && mode != unix.BPF_MSH || ri.K >= skfAdOff {
			continue
		}
		if ri.K >= hdr {
			out[i].K -= hdr
			continue
		}
		ext, ok := anc[ri.K]
		if !ok || mode != unix.BPF_ABS {
			return nil, fmt.Errorf("instruction %d loads byte %d of the cooked header, which an AF_PACKET socket does not show", i, ri.K)
		}
		out[i].K = skfAdOff + uint32(ext)
	}
	return out, nil
}

package tcpstats

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Classic BPF opcodes used by the compiler.
const (
	opRet   = unix.BPF_RET | unix.BPF_K
	opJA    = unix.BPF_JMP | unix.BPF_JA
	opJEQ   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJGT   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	opJGE   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opJSET  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	opLdImm = unix.BPF_LD | unix.BPF_W | unix.BPF_IMM
	opStM   = unix.BPF_ST
	opLdxM  = unix.BPF_LDX | unix.BPF_W | unix.BPF_MEM
	opLdxMS = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH // x = 4*([k]&0xf)
	opAndK  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opLshK  = unix.BPF_ALU | unix.BPF_LSH | unix.BPF_K
	opAddX  = unix.BPF_ALU | unix.BPF_ADD | unix.BPF_X
	opTax   = unix.BPF_MISC | unix.BPF_TAX

	// skfAdOff is SKF_AD_OFF: loads from here on are the kernel's
	// ancillary data (VLAN tag, protocol...), not the packet.
	skfAdOff = 0xfffff000
)

func sizeBits(size uint8) uint16 {
	switch size {
	case 1:
		return unix.BPF_B
	case 2:
		return unix.BPF_H
	}
	return unix.BPF_W
}

type label int32

// insn is an instruction whose jumps still name labels.
type insn struct {
	op     uint16
	k      uint32
	jt, jf label // conditional jumps
	ja     label // BPF_JA
}

type codegen struct {
	ins    []insn
	labels []int // instruction index each label precedes; -1 until placed
}

func (g *codegen) newLabel() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

func (g *codegen) place(l label) { g.labels[l] = len(g.ins) }

func (g *codegen) emit(op uint16, k uint32) { g.ins = append(g.ins, insn{op: op, k: k}) }

// gen emits code for n that goes to t when n holds and to f when not.
// Labels are only placed after the code that jumps to them, so every
// jump goes forward, as classic BPF requires.
func (g *codegen) gen(n node, t, f label) {
	switch n := n.(type) {
	case nAnd:
		m := g.newLabel()
		g.gen(n.a, m, f)
		g.place(m)
		g.gen(n.b, t, f)
	case nOr:
		m := g.newLabel()
		g.gen(n.a, t, m)
		g.place(m)
		g.gen(n.b, t, f)
	case nNot:
		g.gen(n.a, f, t)
	case nTrue:
		g.ins = append(g.ins, insn{op: opJA, ja: t})
	case nSetOff:
		g.emit(opLdImm, n.val)
		g.emit(opStM, 0)
		g.ins = append(g.ins, insn{op: opJA, ja: t})
	case nTest:
		g.load(n.ld)
		if n.mask != 0 {
			g.emit(opAndK, n.mask)
		}
		g.ins = append(g.ins, insn{op: n.op, k: n.val, jt: t, jf: f})
	}
}

func (g *codegen) load(ld load) {
	sz := sizeBits(ld.size)
	switch {
	case ld.kind == ldAncillary:
		g.emit(unix.BPF_LD|sz|unix.BPF_ABS, skfAdOff+ld.off)
	case ld.kind == ldPacket && !ld.variable:
		g.emit(unix.BPF_LD|sz|unix.BPF_ABS, ld.off)
	case ld.kind == ldPacket:
		g.emit(opLdxM, 0)
		g.emit(unix.BPF_LD|sz|unix.BPF_IND, ld.off)
	case !ld.variable: // ldTransport4
		g.emit(opLdxMS, ld.nl)
		g.emit(unix.BPF_LD|sz|unix.BPF_IND, ld.nl+ld.off)
	default: // ldTransport4 after a run-time offset: x = M[0] + 4*IHL
		g.emit(opLdxM, 0)
		g.emit(unix.BPF_LD|unix.BPF_B|unix.BPF_IND, ld.nl)
		g.emit(opAndK, 0xf)
		g.emit(opLshK, 2)
		g.emit(opAddX, 0)
		g.emit(opTax, 0)
		g.emit(unix.BPF_LD|sz|unix.BPF_IND, ld.nl+ld.off)
	}
}

// generate turns the tree into a program that returns snap for the
// frames it keeps and 0 for the others.
func generate(root node, usedM bool, snap uint32) ([]bpf.RawInstruction, error) {
	g := &codegen{}
	if usedM {
		// The kernel refuses a program that may read M[0] before
		// writing it; 0 is "no VLAN tag in the frame".
		g.emit(opLdImm, 0)
		g.emit(opStM, 0)
	}
	accept, reject := g.newLabel(), g.newLabel()
	g.gen(root, accept, reject)
	g.place(accept)
	g.emit(opRet, snap)
	g.place(reject)
	g.emit(opRet, 0)
	return g.layout()
}

var errTooLong = fmt.Errorf("compiles to more than %d instructions, the kernel's limit", maxBPFInsns)

// layout resolves labels into jump offsets. A jump to the next
// instruction is dropped; a conditional jump whose target is more than
// 255 instructions away (its offset is one byte) goes through an
// unconditional jump placed right after it.
func (g *codegen) layout() ([]bpf.RawInstruction, error) {
	n := len(g.ins)
	if n > 4*maxBPFInsns {
		return nil, errTooLong
	}
	target := func(l label) int { return g.labels[l] }
	keep := make([]bool, n)
	for i, in := range g.ins {
		keep[i] = !(in.op == opJA && target(in.ja) == i+1)
	}
	// A dropped jump to the next instruction may itself be the target of
	// another: labels point at instruction indexes, and addr below maps a
	// dropped index to the address of the next kept one.
	farT := make([]bool, n)
	farF := make([]bool, n)
	addr := make([]int, n+1)
	for {
		a := 0
		for i := range g.ins {
			addr[i] = a
			if keep[i] {
				a++
				if farT[i] {
					a++
				}
				if farF[i] {
					a++
				}
			}
		}
		addr[n] = a
		changed := false
		for i, in := range g.ins {
			if !keep[i] || in.op == opJA || in.op&0x07 != unix.BPF_JMP {
				continue
			}
			if !farT[i] && addr[target(in.jt)]-(addr[i]+1) > 255 {
				farT[i], changed = true, true
			}
			if !farF[i] && addr[target(in.jf)]-(addr[i]+1) > 255 {
				farF[i], changed = true, true
			}
		}
		if !changed {
			break
		}
	}
	if addr[n] > maxBPFInsns {
		return nil, errTooLong
	}
	out := make([]bpf.RawInstruction, 0, addr[n])
	for i, in := range g.ins {
		if !keep[i] {
			continue
		}
		pc := addr[i]
		switch {
		case in.op == opJA:
			d := addr[target(in.ja)] - (pc + 1)
			if d < 0 {
				return nil, errors.New("internal error: backward jump")
			}
			out = append(out, bpf.RawInstruction{Op: opJA, K: uint32(d)})
		case in.op&0x07 == unix.BPF_JMP:
			tAddr, fAddr := addr[target(in.jt)], addr[target(in.jf)]
			slot := pc + 1 // where the long jumps, if any, go
			var jt, jf int
			if farT[i] {
				jt, slot = slot-(pc+1), slot+1
			} else {
				jt = tAddr - (pc + 1)
			}
			if farF[i] {
				jf = slot - (pc + 1)
			} else {
				jf = fAddr - (pc + 1)
			}
			if jt < 0 || jf < 0 || jt > 255 || jf > 255 {
				return nil, errors.New("internal error: jump out of range")
			}
			out = append(out, bpf.RawInstruction{Op: in.op, Jt: uint8(jt), Jf: uint8(jf), K: in.k})
			if farT[i] {
				out = append(out, bpf.RawInstruction{Op: opJA, K: uint32(tAddr - len(out) - 1)})
			}
			if farF[i] {
				out = append(out, bpf.RawInstruction{Op: opJA, K: uint32(fAddr - len(out) - 1)})
			}
		default:
			out = append(out, bpf.RawInstruction{Op: in.op, K: in.k})
		}
	}
	return out, nil
}

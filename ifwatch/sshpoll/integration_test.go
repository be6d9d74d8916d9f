package sshpoll

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/statsfile"
	"github.com/netpulse/netpulse/internal/integration"
)

// statsHeader is a shortened Flow Collector header: the columns that
// matter are not the first ones nor next to each other, as in the real
// file.
const statsHeader = "Exporter Address\tLast Active\tStatus\tInterfaces\tTotal Flows\tCurrent NetFlow bps\tMaximum NetFlow bps\n"

// writeStats replaces path as a collector does, and sets its
// modification time.
func writeStats(t *testing.T, path string, mtime time.Time, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	writeFile(t, tmp, []byte(content), 0o644)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// bps returns the rate of each exporter (and ifIndex when not 0) of a
// poll, failing t on a source error.
func bps(t *testing.T, p Poll) map[string]float64 {
	t.Helper()
	if p.Err != nil {
		t.Fatalf("poll of %s: %v", p.Collector, p.Err)
	}
	m := map[string]float64{}
	for _, r := range p.Rows {
		k := r.Exporter.String()
		if r.IfIndex != 0 {
			k += "/" + strconv.FormatUint(uint64(r.IfIndex), 10)
		}
		m[k] = r.BPS
	}
	return m
}

func equalRates(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

func mustNew(t *testing.T, cfg Config, deps Deps) *Poller {
	t.Helper()
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pollAll(t *testing.T, p *Poller) []Poll {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return p.PollAll(ctx)
}

// TestRemoteCollectors polls two real OpenSSH servers, each standing
// for a Flow Collector, over SFTP.
func TestRemoteCollectors(t *testing.T) {
	user, userPEM := newKey(t)
	encKey, encPub := encryptedKey(t, "correct horse")
	agentUser, agentPEM := newKey(t)
	a := startSSHD(t, user.PublicKey(), encPub, agentUser.PublicKey())
	b := startSSHD(t, user.PublicKey())

	dir := t.TempDir()
	keyFile := writeFile(t, filepath.Join(dir, "id_ed25519"), userPEM, 0o600)
	known := knownHostsFile(t, a.Addr, a.HostKey, b.Addr, b.HostKey)
	pathA := filepath.Join(dir, "fc-a", "exporter_device_stats.txt")
	pathB := filepath.Join(dir, "fc-b", "exporter_device_stats.txt")
	base := Config{
		KeyFile:     keyFile,
		KnownHosts:  []string{known},
		Timeout:     5 * time.Second,
		ReadTimeout: 5 * time.Second,
		Attempts:    3,
		Backoff:     10 * time.Millisecond,
	}
	withCollectors := func(cfg Config, cs ...Collector) Config {
		cfg.Collectors = cs
		return cfg
	}
	fcA := Collector{Name: "fc-a", Address: a.Addr, Path: pathA}
	fcB := Collector{Name: "fc-b", Address: b.Addr, Path: pathB}
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	// Every subtest can run alone: each collector starts with a file.
	writeStats(t, pathA, t0, statsHeader+"192.0.2.10\t1793613600\t1\t8\t9000\t5000\t9000\n")
	writeStats(t, pathB, t0, statsHeader+"192.0.2.10\t0\t2\t0\t0\t0\t0\n")

	t.Run("flow moves from A to B", func(t *testing.T) {
		p := mustNew(t, withCollectors(base, fcA, fcB), Deps{})
		// Before: 192.0.2.10 exports to A; B knows it from an older
		// assignment and reports 0.
		writeStats(t, pathA, t0, statsHeader+
			"192.0.2.10\t1793613600\t1\t8\t9000\t5000\t9000\n"+
			"192.0.2.20\t1793613599\t1\t2\t700\t700\t800\n")
		writeStats(t, pathB, t0.Add(-2*time.Minute), statsHeader+
			"192.0.2.10\t0\t2\t0\t0\t0\t0\n")
		polls := pollAll(t, p)
		before := polls
		if len(polls) != 2 || polls[0].Collector != "fc-a" || polls[1].Collector != "fc-b" {
			t.Fatalf("polls %+v, want fc-a then fc-b", polls)
		}
		if got, want := bps(t, polls[0]), map[string]float64{"192.0.2.10": 5000, "192.0.2.20": 700}; !equalRates(got, want) {
			t.Errorf("before, A: %v, want %v", got, want)
		}
		if got, want := bps(t, polls[1]), map[string]float64{"192.0.2.10": 0}; !equalRates(got, want) {
			t.Errorf("before, B: %v, want %v", got, want)
		}
		if !polls[0].ModTime.Equal(t0) || !polls[1].ModTime.Equal(t0.Add(-2*time.Minute)) {
			t.Errorf("mtimes %v and %v, want %v and %v", polls[0].ModTime, polls[1].ModTime, t0, t0.Add(-2*time.Minute))
		}
		if la := polls[0].Rows[0].LastActive; !la.Equal(time.Unix(1793613600, 0)) {
			t.Errorf("A's Last Active of 192.0.2.10 = %v", la)
		}

		// The flow moves: A reports 0 for it, B > 0.
		t1 := t0.Add(5 * time.Minute)
		writeStats(t, pathA, t1, statsHeader+
			"192.0.2.10\t1793613600\t1\t8\t9000\t0\t9000\n"+
			"192.0.2.20\t1793613899\t1\t2\t900\t650\t800\n")
		writeStats(t, pathB, t1, statsHeader+
			"192.0.2.10\t1793613900\t1\t8\t1200\t8000\t8000\n")
		polls = pollAll(t, p)
		if got, want := bps(t, polls[0]), map[string]float64{"192.0.2.10": 0, "192.0.2.20": 650}; !equalRates(got, want) {
			t.Errorf("after, A: %v, want %v", got, want)
		}
		if got, want := bps(t, polls[1]), map[string]float64{"192.0.2.10": 8000}; !equalRates(got, want) {
			t.Errorf("after, B: %v, want %v", got, want)
		}
		// ifwatch, fed these polls a minute apart for 20 minutes (before
		// the move, then after it), never reports 192.0.2.10 down: A's
		// zero is ignored while B carries the flow.
		checkNothingDown(t, before, polls)
		// ifwatch counts an exporter up when any source reports > 0: the
		// moved flow stays up, A's zero notwithstanding.
		if bps(t, polls[0])["192.0.2.10"]+bps(t, polls[1])["192.0.2.10"] <= 0 {
			t.Error("after the move no collector reports 192.0.2.10 above 0")
		}
		for _, pl := range polls {
			if !pl.ModTime.Equal(t1) || pl.Attempts != 1 || pl.BadRows != 0 || pl.Size == 0 {
				t.Errorf("%s: mtime %v attempts %d bad %d size %d, want %v, 1, 0, > 0", pl.Collector, pl.ModTime, pl.Attempts, pl.BadRows, pl.Size, t1)
			}
		}
		for _, name := range []string{"fc-a", "fc-b"} {
			if up := gauge(t, p, "netpulse_ifwatch_sshpoll_up", name); up != 1 {
				t.Errorf("netpulse_ifwatch_sshpoll_up{collector=%q} = %v, want 1", name, up)
			}
		}
	})

	t.Run("per-interface file with a column mapping", func(t *testing.T) {
		path := filepath.Join(dir, "fc-b", "interfaces.tsv")
		writeStats(t, path, t0, "router\tifIndex\tseen\trate\n"+
			"192.0.2.10\t3\t1793613900\t4000\n"+
			"192.0.2.10\t4\t1793613900\t0\n")
		cols := statsfile.Columns{Exporter: "router", IfIndex: "ifIndex", LastActive: "seen", BPS: "rate"}
		p := mustNew(t, withCollectors(base, Collector{Name: "fc-b", Address: b.Addr, Path: path, Columns: cols}), Deps{})
		if got, want := bps(t, pollAll(t, p)[0]), map[string]float64{"192.0.2.10/3": 4000, "192.0.2.10/4": 0}; !equalRates(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("missing file is a source error", func(t *testing.T) {
		p := mustNew(t, withCollectors(base, Collector{Name: "fc-a", Address: a.Addr, Path: filepath.Join(dir, "fc-a", "no-such-file.txt")}), Deps{})
		pl := pollAll(t, p)[0]
		t.Logf("%v", pl.Err)
		if KindOf(pl.Err) != KindMissing || pl.Rows != nil || pl.Attempts != 1 {
			t.Errorf("err %v, %d rows, %d attempts; want a missing-file source error, no rows, 1 attempt", pl.Err, len(pl.Rows), pl.Attempts)
		}
	})

	t.Run("corrupt row is counted and skipped", func(t *testing.T) {
		path := filepath.Join(dir, "fc-a", "corrupt.txt")
		writeStats(t, path, t0, statsHeader+
			"192.0.2.10\t1793613600\t1\t8\t9000\t5000\t9000\n"+
			"192.0.2.\x00\t1793613600\t1\t8\t9000\t5000\t9000\n"+
			"192.0.2.20\t1793613599\t1\t2\t700\t700\t800\n")
		p := mustNew(t, withCollectors(base, Collector{Name: "fc-a", Address: a.Addr, Path: path}), Deps{})
		pl := pollAll(t, p)[0]
		if got, want := bps(t, pl), map[string]float64{"192.0.2.10": 5000, "192.0.2.20": 700}; !equalRates(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if pl.BadRows != 1 || len(pl.BadSamples) != 1 || pl.BadSamples[0].Line != 3 {
			t.Errorf("bad rows %d %v, want 1 at line 3", pl.BadRows, pl.BadSamples)
		}
	})

	t.Run("file without the bps column is a source error", func(t *testing.T) {
		path := filepath.Join(dir, "fc-a", "nocolumn.txt")
		writeStats(t, path, t0, "Exporter Address\tLast Active\n192.0.2.10\t1793613600\n")
		p := mustNew(t, withCollectors(base, Collector{Name: "fc-a", Address: a.Addr, Path: path}), Deps{})
		if pl := pollAll(t, p)[0]; KindOf(pl.Err) != KindParse || !strings.Contains(pl.Err.Error(), "Current NetFlow bps") {
			t.Errorf("err %v, want a parse source error naming the column", pl.Err)
		}
	})

	t.Run("file larger than max_file_size", func(t *testing.T) {
		cfg := withCollectors(base, fcA)
		cfg.MaxFileSize = 64
		p := mustNew(t, cfg, Deps{})
		if pl := pollAll(t, p)[0]; KindOf(pl.Err) != KindTooLarge {
			t.Errorf("err %v, want too_large", pl.Err)
		}
	})

	t.Run("unknown host key is refused", func(t *testing.T) {
		cfg := withCollectors(base, fcA, fcB)
		cfg.KnownHosts = []string{knownHostsFile(t, a.Addr, a.HostKey)}
		polls := pollAll(t, mustNew(t, cfg, Deps{}))
		if polls[0].Err != nil {
			t.Errorf("A (known): %v", polls[0].Err)
		}
		t.Logf("B: %v", polls[1].Err)
		if pl := polls[1]; KindOf(pl.Err) != KindHostKey || !strings.Contains(pl.Err.Error(), "not in known_hosts") || pl.Attempts != 1 {
			t.Errorf("B (unknown): err %v after %d attempts, want a host_key error after 1", pl.Err, pl.Attempts)
		}
	})

	t.Run("changed host key is refused", func(t *testing.T) {
		cfg := withCollectors(base, fcB)
		cfg.KnownHosts = []string{knownHostsFile(t, b.Addr, a.HostKey)} // A's key under B's address
		pl := pollAll(t, mustNew(t, cfg, Deps{}))[0]
		t.Logf("%v", pl.Err)
		if KindOf(pl.Err) != KindHostKey || !strings.Contains(pl.Err.Error(), "differs") {
			t.Errorf("err %v, want a host_key mismatch", pl.Err)
		}
	})

	t.Run("wrong user key is refused", func(t *testing.T) {
		_, otherPEM := newKey(t)
		cfg := withCollectors(base, fcA)
		cfg.KeyFile = writeFile(t, filepath.Join(t.TempDir(), "id_other"), otherPEM, 0o600)
		pl := pollAll(t, mustNew(t, cfg, Deps{}))[0]
		t.Logf("%v", pl.Err)
		if KindOf(pl.Err) != KindAuth || pl.Attempts != 1 {
			t.Errorf("err %v after %d attempts, want an auth error after 1", pl.Err, pl.Attempts)
		}
	})

	t.Run("wrong user is refused", func(t *testing.T) {
		c := fcA
		c.User = "nobody"
		if pl := pollAll(t, mustNew(t, withCollectors(base, c), Deps{}))[0]; KindOf(pl.Err) != KindAuth {
			t.Errorf("err %v, want an auth error", pl.Err)
		}
	})

	t.Run("encrypted key", func(t *testing.T) {
		cfg := withCollectors(base, fcA)
		cfg.KeyFile = encKey
		if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "passphrase_env or passphrase_file") {
			t.Errorf("no passphrase: err %v, want one naming passphrase_env", err)
		}
		t.Setenv("NETPULSE_TEST_SSH_PASSPHRASE", "correct horse")
		cfg.PassphraseEnv = "NETPULSE_TEST_SSH_PASSPHRASE"
		if pl := pollAll(t, mustNew(t, cfg, Deps{}))[0]; pl.Err != nil {
			t.Errorf("passphrase from env: %v", pl.Err)
		}
		cfg.PassphraseEnv = ""
		cfg.PassphraseFile = writeFile(t, filepath.Join(t.TempDir(), "pass"), []byte("correct horse\n"), 0o600)
		if pl := pollAll(t, mustNew(t, cfg, Deps{}))[0]; pl.Err != nil {
			t.Errorf("passphrase from file: %v", pl.Err)
		}
		cfg.PassphraseFile = writeFile(t, filepath.Join(t.TempDir(), "pass"), []byte("wrong\n"), 0o600)
		if _, err := New(cfg, Deps{}); err == nil {
			t.Error("wrong passphrase: no error")
		}
	})

	t.Run("SSH agent", func(t *testing.T) {
		raw, err := ssh.ParseRawPrivateKey(agentPEM)
		if err != nil {
			t.Fatal(err)
		}
		kr := agent.NewKeyring()
		if err := kr.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(t.TempDir(), "agent.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { ln.Close(); wg.Wait() })
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { defer c.Close(); agent.ServeAgent(kr, c) })
			}
		})
		cfg := withCollectors(base, fcA)
		cfg.KeyFile, cfg.Agent, cfg.AgentSocket = "", true, sock
		if pl := pollAll(t, mustNew(t, cfg, Deps{}))[0]; pl.Err != nil {
			t.Errorf("login with the agent's key: %v", pl.Err)
		}
	})

	t.Run("Start polls every interval until Stop", func(t *testing.T) {
		var mu sync.Mutex
		seen := map[string]int{}
		enough := make(chan struct{})
		cfg := withCollectors(base, fcA, fcB)
		cfg.Interval = 20 * time.Millisecond
		p := mustNew(t, cfg, Deps{Handle: func(pl Poll) {
			mu.Lock()
			defer mu.Unlock()
			if pl.Err != nil {
				t.Errorf("%s: %v", pl.Collector, pl.Err)
			}
			seen[pl.Collector]++
			if seen["fc-a"] == 2 && seen["fc-b"] == 2 {
				close(enough)
			}
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-enough:
		case <-ctx.Done():
			t.Error("fewer than 2 polls of each collector in 20s")
		}
		if err := p.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if last := p.Last(); len(last) != 2 {
			t.Errorf("Last: %d polls, want 2", len(last))
		}
	})
}

// encryptedKey makes a passphrase-protected key with ssh-keygen, as an
// operator would, with few KDF rounds to keep the test fast (Go's
// ssh.MarshalPrivateKeyWithPassphrase uses 16, seconds under -race).
// It returns the key file and the public key.
func encryptedKey(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	keygen := integration.Tool(t, "ssh-keygen")
	path := filepath.Join(t.TempDir(), "id_enc")
	out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-a", "2", "-N", passphrase, "-C", "netpulse test", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pubText, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	return path, pub
}

// checkNothingDown feeds real polls into an ifwatch.Watcher, one round a
// minute: ten rounds of before, ten of after, and fails on any down
// event.
func checkNothingDown(t *testing.T, before, after []Poll) {
	t.Helper()
	ctx := context.Background()
	clock := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	w, err := ifwatch.New(ifwatch.DefaultConfig(), ifwatch.Deps{Ledger: ifwatch.NewMemLedger(), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	moved := ifwatch.Key{Exporter: netip.MustParseAddr("192.0.2.10")}
	for round := range 20 {
		polls := before
		if round >= 10 {
			polls = after
		}
		for _, p := range polls {
			p.Time = clock
			obs, failing := Observations(p)
			w.SetSourceFailing(Source(p.Collector), failing)
			ev, err := w.Observe(ctx, obs...)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ev {
				if e.Kind == ifwatch.EventDown {
					t.Errorf("round %d: %v", round, e)
				}
			}
		}
		ev, _ := w.Tick(ctx)
		for _, e := range ev {
			if e.Kind == ifwatch.EventDown {
				t.Errorf("round %d tick: %v", round, e)
			}
		}
		clock = clock.Add(time.Minute)
	}
	if st := w.Status(moved).State; st != ifwatch.Up {
		t.Errorf("192.0.2.10 after the move: %v, want up", st)
	}
}

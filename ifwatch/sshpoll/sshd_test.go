package sshpoll

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/netpulse/netpulse/internal/integration"
)

// This file runs Debian's OpenSSH server (openssh-server) on loopback
// ports, each with a temporary host key, a temporary authorized key and
// the internal SFTP server, as the Flow Collectors run theirs.

// sshdPath returns the sshd program, or skips (fails when integration
// peers are required). sshd logs in only its own user when it does not
// run as root, and the collectors are polled as root, so the test needs
// root.
func sshdPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			integration.Missing(t, "sshd is not installed (apt-get install openssh-server, see .ci/run)")
		}
		path = "/usr/sbin/sshd"
	}
	if os.Geteuid() != 0 {
		integration.Missing(t, "the sshd test starts sshd and logs in as root: run it as root")
	}
	// sshd needs its privilege separation directory, which Debian's
	// service unit creates at boot and a container may lack.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create sshd's privilege separation directory: %v", err)
	}
	return path
}

// newKey makes an ed25519 key pair; the private key is also returned as
// an OpenSSH PEM file.
func newKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "netpulse test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer collects sshd's log for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(line + "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sshServer is one running sshd.
type sshServer struct {
	Addr    string // 127.0.0.1:port
	HostKey ssh.PublicKey
	log     *syncBuffer
}

// startSSHD starts sshd on a free loopback port, accepting the given
// user keys for root, and stops it (its whole process group) at cleanup.
func startSSHD(t *testing.T, authorized ...ssh.PublicKey) *sshServer {
	t.Helper()
	bin := sshdPath(t)
	dir := t.TempDir()
	host, hostPEM := newKey(t)
	writeFile(t, filepath.Join(dir, "host_ed25519"), hostPEM, 0o600)
	var ak bytes.Buffer
	for _, k := range authorized {
		ak.Write(ssh.MarshalAuthorizedKey(k))
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), ak.Bytes(), 0o600)

	// The port is free when asked; another process could take it before
	// sshd binds, so a failed bind is tried again on a new port.
	for try := 0; try < 3; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		config := fmt.Sprintf(`ListenAddress %s
HostKey %s/host_ed25519
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
`, addr, dir, dir, dir)
		cfgPath := writeFile(t, filepath.Join(dir, "sshd_config"), []byte(config), 0o600)
		srv, ok := runSSHD(t, bin, cfgPath, addr)
		if ok {
			srv.HostKey = host.PublicKey()
			return srv
		}
		if !strings.Contains(srv.log.String(), "Address already in use") {
			t.Fatalf("sshd did not start:\n%s", srv.log)
		}
	}
	t.Fatal("sshd: no free port after 3 tries")
	return nil
}

// runSSHD starts sshd and waits until it listens; false if it exited.
func runSSHD(t *testing.T, bin, cfgPath, addr string) (*sshServer, bool) {
	t.Helper()
	srv := &sshServer{Addr: addr, log: &syncBuffer{}}
	cmd := exec.Command(bin, "-D", "-e", "-f", cfgPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	listening := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, port, _ := net.SplitHostPort(addr)
		want := "Server listening on 127.0.0.1 port " + port
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			srv.log.add(s.Text())
			if strings.Contains(s.Text(), want) {
				close(listening)
			}
		}
		cmd.Wait()
	}()
	stop := func() {
		// The listener and any session process it forked share its
		// process group.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	select {
	case <-listening:
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("sshd %s log:\n%s", addr, srv.log)
			}
		})
		return srv, true
	case <-exited:
		return srv, false
	case <-time.After(10 * time.Second):
		stop()
		t.Fatalf("sshd did not listen within 10s:\n%s", srv.log)
	}
	return nil, false
}

// knownHostsFile writes a known_hosts file with the given address and
// key pairs.
func knownHostsFile(t *testing.T, entries ...any) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(entries); i += 2 {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(entries[i].(string))}, entries[i+1].(ssh.PublicKey)) + "\n")
	}
	return writeFile(t, filepath.Join(t.TempDir(), "known_hosts"), []byte(b.String()), 0o600)
}

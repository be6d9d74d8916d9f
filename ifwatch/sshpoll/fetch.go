package sshpoll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// loadKey reads and parses the key file, decrypting it with the
// configured passphrase when it is encrypted.
func loadKey(cfg *Config) (ssh.Signer, error) {
	pem, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("sshpoll: key_file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		var pass []byte
		switch {
		case cfg.PassphraseEnv != "":
			v, ok := os.LookupEnv(cfg.PassphraseEnv)
			if !ok {
				return nil, fmt.Errorf("sshpoll: passphrase_env: environment variable %s is not set", cfg.PassphraseEnv)
			}
			pass = []byte(v)
		case cfg.PassphraseFile != "":
			b, err := os.ReadFile(cfg.PassphraseFile)
			if err != nil {
				return nil, fmt.Errorf("sshpoll: passphrase_file: %w", err)
			}
			pass = bytes.TrimRight(b, "\r\n")
		default:
			return nil, fmt.Errorf("sshpoll: key_file %s is encrypted: set passphrase_env or passphrase_file", cfg.KeyFile)
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
		if err != nil {
			return nil, fmt.Errorf("sshpoll: key_file %s: decrypt with the passphrase: %w", cfg.KeyFile, err)
		}
		return signer, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sshpoll: key_file %s: %w", cfg.KeyFile, err)
	}
	return signer, nil
}

// expandHome replaces a leading ~/ by the home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, p[1:]), nil
}

// hostKeys returns the host key check of one connection, reading the
// known_hosts files again so that an edit needs no restart.
func (p *Poller) hostKeys() (ssh.HostKeyCallback, error) {
	if p.cfg.InsecureIgnoreHostKey {
		return ssh.InsecureIgnoreHostKey(), nil // documented as for tests only
	}
	cb, err := knownhosts.New(p.knownHosts...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return cb, nil
}

// hostKeyAlgorithms lists the key types known_hosts holds for the host,
// so that the server is asked for a key that can be checked rather than
// the one it prefers. Nil (the library's default order) when the host
// is not listed.
func hostKeyAlgorithms(cb ssh.HostKeyCallback, host string, remote net.Addr, probe ssh.PublicKey) []string {
	var ke *knownhosts.KeyError
	if err := cb(host, remote, probe); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, k := range ke.Want {
		if t := k.Key.Type(); t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(t)
		} else {
			add(t)
		}
	}
	return out
}

// newProbeKey makes a throwaway public key that matches no known_hosts
// line, to ask the database which keys it holds for a host.
func newProbeKey() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// signers returns the keys to offer: the key file's, then the agent's.
// The returned close ends the agent connection.
func (p *Poller) signers() (func() ([]ssh.Signer, error), func(), error) {
	var agentConn net.Conn
	var ag agent.ExtendedAgent
	if p.cfg.Agent {
		if p.agentSocket == "" {
			if p.key == nil {
				return nil, nil, errors.New("agent: SSH_AUTH_SOCK is not set and agent_socket is empty")
			}
		} else {
			c, err := net.DialTimeout("unix", p.agentSocket, p.cfg.Timeout)
			if err != nil && p.key == nil {
				return nil, nil, fmt.Errorf("agent: %w", err)
			}
			if err == nil {
				agentConn, ag = c, agent.NewClient(c)
			} else {
				p.log.Warn("sshpoll: SSH agent unreachable; trying the key file alone", "socket", p.agentSocket, "err", err)
			}
		}
	}
	get := func() ([]ssh.Signer, error) {
		var out []ssh.Signer
		if p.key != nil {
			out = append(out, p.key)
		}
		if ag != nil {
			s, err := ag.Signers()
			if err != nil && len(out) == 0 {
				return nil, fmt.Errorf("agent: %w", err)
			}
			out = append(out, s...)
		}
		return out, nil
	}
	closeAgent := func() {
		if agentConn != nil {
			agentConn.Close()
		}
	}
	return get, closeAgent, nil
}

// fetched is a file read from a collector.
type fetched struct {
	data    []byte
	modTime time.Time
	size    int64
}

// hostKeyResult records what the host key check said, for telling a
// refused host key from other handshake failures.
type hostKeyResult struct {
	mu  sync.Mutex
	ok  bool
	err error
}

func (h *hostKeyResult) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok, h.err = err == nil, err
}

func (h *hostKeyResult) get() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.err
}

// fetch makes one attempt: connect, log in, read the file over SFTP.
func (p *Poller) fetch(ctx context.Context, c *collector) (*fetched, *failure) {
	d := net.Dialer{Timeout: p.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Address)
	if err != nil {
		return nil, fail(KindUnreachable, "connect %s: %w", c.cfg.Address, err)
	}
	defer conn.Close()
	// Cancelling ctx closes the connection, which ends any step.
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	if err := conn.SetDeadline(time.Now().Add(p.cfg.Timeout)); err != nil {
		return nil, fail(KindUnreachable, "%w", err)
	}
	check, err := p.hostKeys()
	if err != nil {
		return nil, fail(KindHostKey, "%w", err)
	}
	get, closeAgent, err := p.signers()
	if err != nil {
		return nil, fail(KindAuth, "%w", err)
	}
	defer closeAgent()
	var hk hostKeyResult
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.cfg.Address, &ssh.ClientConfig{
		User: c.cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(get)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			err := check(host, remote, key)
			hk.set(err)
			return err
		},
		HostKeyAlgorithms: hostKeyAlgorithms(check, c.cfg.Address, conn.RemoteAddr(), p.probe),
		Timeout:           p.cfg.Timeout,
	})
	if err != nil {
		return nil, handshakeFailure(c, &hk, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	defer client.Close()

	if err := conn.SetDeadline(time.Now().Add(p.cfg.ReadTimeout)); err != nil {
		return nil, fail(KindRead, "%w", err)
	}
	sf, err := sftp.NewClient(client)
	if err != nil {
		return nil, fail(KindRead, "start sftp (is the sftp subsystem enabled?): %w", err)
	}
	defer sf.Close()
	f, err := sf.Open(c.cfg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fail(KindMissing, "%s: no such file", c.cfg.Path)
	}
	if err != nil {
		return nil, fail(KindRead, "open %s: %w", c.cfg.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fail(KindRead, "stat %s: %w", c.cfg.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fail(KindRead, "%s is not a regular file (%v)", c.cfg.Path, fi.Mode())
	}
	limit := p.cfg.MaxFileSize
	if fi.Size() > limit {
		return nil, fail(KindTooLarge, "%s has %d bytes, more than max_file_size %d", c.cfg.Path, fi.Size(), limit)
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	// The file may grow between the stat and the read: read at most one
	// byte past the limit to tell.
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, fail(KindRead, "read %s: %w", c.cfg.Path, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fail(KindTooLarge, "%s grew past max_file_size %d while read", c.cfg.Path, limit)
	}
	return &fetched{data: buf.Bytes(), modTime: fi.ModTime(), size: int64(buf.Len())}, nil
}

// handshakeFailure tells a refused host key and a refused login from a
// transport failure.
func handshakeFailure(c *collector, hk *hostKeyResult, err error) *failure {
	ok, hkErr := hk.get()
	var ke *knownhosts.KeyError
	switch {
	case hkErr != nil && errors.As(hkErr, &ke) && len(ke.Want) == 0:
		host, port, _ := net.SplitHostPort(c.cfg.Address)
		return fail(KindHostKey, "host key of %s is not in known_hosts; check it and add it (ssh-keyscan -p %s %s)", c.cfg.Address, port, host)
	case hkErr != nil && errors.As(hkErr, &ke):
		return fail(KindHostKey, "host key of %s differs from the one in %s:%d: refused, it may be an attack", c.cfg.Address, ke.Want[0].Filename, ke.Want[0].Line)
	case hkErr != nil:
		return fail(KindHostKey, "host key of %s refused: %w", c.cfg.Address, hkErr)
	case ok && strings.Contains(err.Error(), "unable to authenticate"):
		return fail(KindAuth, "login as %s refused: %w", c.cfg.User, err)
	}
	return fail(KindUnreachable, "ssh handshake with %s: %w", c.cfg.Address, err)
}

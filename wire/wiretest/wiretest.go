// Package wiretest runs an in-process collector receiver (wire.Handler) on
// a loopback TLS listener, with certificates made on the fly, for tests of
// senders.
package wiretest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/wire"
	"google.golang.org/protobuf/proto"
)

// PKI is a throw-away CA with a server certificate for 127.0.0.1 and ::1
// and a client certificate, written as PEM files in a test's temp dir.
type PKI struct {
	CAFile         string
	ServerCert     tls.Certificate
	ServerCertFile string
	ServerKeyFile  string
	ClientCertFile string
	ClientKeyFile  string
	CAPool         *x509.CertPool
	caCert         *x509.Certificate
	caKey          *ecdsa.PrivateKey
	dir            string
	serial         int64
}

// NewPKI makes a CA, a server and a client certificate.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{dir: t.TempDir(), CAPool: x509.NewCertPool()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netpulse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.serial = 1
	p.CAPool.AddCert(p.caCert)
	p.CAFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.CAFile, "CERTIFICATE", der)

	p.ServerCertFile = filepath.Join(p.dir, "server.pem")
	p.ServerKeyFile = filepath.Join(p.dir, "server-key.pem")
	p.ServerCert = p.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth, p.ServerCertFile, p.ServerKeyFile)
	p.ClientCertFile = filepath.Join(p.dir, "client.pem")
	p.ClientKeyFile = filepath.Join(p.dir, "client-key.pem")
	p.issue(t, "proxy-1", x509.ExtKeyUsageClientAuth, p.ClientCertFile, p.ClientKeyFile)
	return p
}

func (p *PKI) issue(t testing.TB, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != "" {
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ClientTLS returns a client TLS config trusting the CA.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.CAPool, MinVersion: tls.VersionTLS12}
}

// Token and Proxy are what a Server accepts by default.
const (
	Token = "test-token-0123456789"
	Proxy = "proxy-1"
)

// Server is a receiver on a loopback TLS listener. It records every batch
// it accepted, by batch id, and can be made to fail on demand.
type Server struct {
	PKI     *PKI
	Handler *wire.Handler
	URL     string // https://127.0.0.1:port/api/v1/flows

	// Fail, when it returns a status, makes the server answer it without
	// reading the request; 0 lets the request through.
	Fail func(r *http.Request) int
	// AfterBatch runs after a batch was kept, before the answer: it may
	// hijack and close the connection to lose the acknowledgement.
	AfterBatch func(w http.ResponseWriter, r *http.Request, b *flowpb.Batch)

	mu      sync.Mutex
	batches map[string]*flowpb.Batch
	order   []string
	repeats int
	count   bool
	nrec    int
	srv     *http.Server
	ln      net.Listener
	addr    string
	mtls    bool
}

// Options tune NewServer.
type Options struct {
	// MTLS requires a client certificate from the PKI's CA.
	MTLS bool
	// CountOnly keeps only the number of records, not the batches (for
	// benchmarks).
	CountOnly bool
	// Config is the handler configuration; Tokens defaults to
	// {Token: Proxy}.
	Config wire.HandlerConfig
}

// NewServer starts a receiver on 127.0.0.1:0 that stops when t ends.
func NewServer(t testing.TB, pki *PKI, o Options) *Server {
	t.Helper()
	s := &Server{PKI: pki, batches: make(map[string]*flowpb.Batch), mtls: o.MTLS, count: o.CountOnly}
	cfg := o.Config
	if cfg.Tokens == nil && cfg.Auth == nil {
		cfg.Tokens = map[string]string{Token: Proxy}
	}
	h, err := wire.NewHandler(cfg, s.keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Handler = h
	s.Start(t, "127.0.0.1:0")
	s.URL = "https://" + s.addr + wire.Path
	t.Cleanup(s.Close)
	return s
}

type ctxKey struct{}

func (s *Server) keep(ctx context.Context, proxy string, b *flowpb.Batch) error {
	s.mu.Lock()
	s.nrec += len(b.Records)
	if s.count {
		s.mu.Unlock()
		return nil
	}
	if _, dup := s.batches[b.BatchId]; dup {
		s.repeats++
	} else {
		s.order = append(s.order, b.BatchId)
	}
	s.batches[b.BatchId] = proto.Clone(b).(*flowpb.Batch)
	s.mu.Unlock()
	if hook := ctx.Value(ctxKey{}); hook != nil {
		hook.(func(*flowpb.Batch))(b)
	}
	return nil
}

// Start (re)starts listening on addr (first 127.0.0.1:0, then the same
// address after Close, to bring a receiver back up).
func (s *Server) Start(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old port may linger briefly
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{s.PKI.ServerCert}, MinVersion: tls.VersionTLS12}
	if s.mtls {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = s.PKI.CAPool
	}
	mux := http.NewServeMux()
	mux.HandleFunc(wire.Path, func(w http.ResponseWriter, r *http.Request) {
		if s.Fail != nil {
			if code := s.Fail(r); code != 0 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "failing on purpose", code)
				return
			}
		}
		if s.AfterBatch != nil {
			hook := func(b *flowpb.Batch) { s.AfterBatch(w, r, b) }
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, hook))
		}
		s.Handler.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv, s.ln, s.addr = srv, ln, ln.Addr().String()
	s.mu.Unlock()
	go func() { _ = srv.Serve(tls.NewListener(ln, tc)) }()
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.addr }

// Close stops listening and drops open connections: the receiver is down
// until Start.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Batches returns the accepted batches in arrival order.
func (s *Server) Batches() []*flowpb.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*flowpb.Batch, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.batches[id])
	}
	return out
}

// Repeats counts batches handed to OnBatch more than once: the handler's
// deduplication should keep it at 0.
func (s *Server) Repeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repeats
}

// Records returns the number of records handed to OnBatch.
func (s *Server) Records() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nrec
}

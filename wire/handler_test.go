package wire_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/wire"
	"github.com/netpulse/netpulse/wire/wiretest"
)

func batch(n int) *flowpb.Batch {
	b := &flowpb.Batch{BatchId: wire.NewBatchID(), Proxy: wiretest.Proxy}
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, &flowpb.Record{Kind: flowpb.Kind_KIND_FLOW, SrcPort: uint32(i), Bytes: 100})
	}
	return b
}

func client(pki *wiretest.PKI) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}, Timeout: 10 * time.Second}
}

func post(t *testing.T, c *http.Client, url, token, id, ct string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", wire.ContentEncoding)
	req.Header.Set(wire.HeaderBatchID, id)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestHandler(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := wiretest.NewServer(t, pki, wiretest.Options{Config: wire.HandlerConfig{MaxBody: 64 << 10, MaxDecompressed: 1 << 20}})
	c := client(pki)
	codec := wire.NewCodec()
	good := batch(10)
	body, _ := codec.EncodeBatch(good)

	var bombBuf bytes.Buffer
	enc, _ := zstd.NewWriter(&bombBuf)
	_, _ = enc.Write(make([]byte, 8<<20))
	_ = enc.Close()

	big := batch(0)
	for i := 0; i < 20000; i++ { // incompressible enough to pass 64 KiB
		big.Records = append(big.Records, &flowpb.Record{SrcPort: uint32(i), Bytes: uint64(i) * 7919, SrcHostname: wire.NewBatchID()})
	}
	bigBody, _ := codec.EncodeBatch(big)

	tests := []struct {
		name, token, id, ct string
		body                []byte
		want                int
	}{
		{"no token", "", good.BatchId, wire.ContentType, body, 401},
		{"bad token", "nope", good.BatchId, wire.ContentType, body, 401},
		{"garbage", wiretest.Token, good.BatchId, wire.ContentType, []byte("garbage"), 400},
		{"id mismatch", wiretest.Token, wire.NewBatchID(), wire.ContentType, body, 400},
		{"bad id header", wiretest.Token, "a/b", wire.ContentType, body, 400},
		{"content type", wiretest.Token, good.BatchId, "application/json", body, 415},
		{"bomb", wiretest.Token, good.BatchId, wire.ContentType, bombBuf.Bytes(), 413},
		{"body too large", wiretest.Token, big.BatchId, wire.ContentType, bigBody, 413},
		{"good", wiretest.Token, good.BatchId, wire.ContentType, body, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := post(t, c, srv.URL, tt.token, tt.id, tt.ct, tt.body)
			if got != tt.want {
				t.Errorf("status %d (%s), want %d", got, msg, tt.want)
			}
		})
	}

	// The same batch again is acknowledged as a duplicate and not kept twice.
	code, msg := post(t, c, srv.URL, wiretest.Token, good.BatchId, wire.ContentType, body)
	var ack wire.Ack
	if err := json.Unmarshal([]byte(msg), &ack); err != nil || code != 200 || !ack.Duplicate || ack.Accepted != 10 || ack.BatchID != good.BatchId {
		t.Fatalf("repeat: %d %s", code, msg)
	}
	if n := len(srv.Batches()); n != 1 || srv.Repeats() != 0 {
		t.Fatalf("kept %d batches, %d repeats; want 1, 0", n, srv.Repeats())
	}
	st := srv.Handler.Stats()
	if st.Batches != 1 || st.Records != 10 || st.Duplicates != 1 || st.Rejected[wire.ReasonAuth] != 2 ||
		st.Rejected[wire.ReasonMalformed] != 3 || st.Rejected[wire.ReasonTooLarge] != 2 || st.Rejected[wire.ReasonContentType] != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Post, the sender's side, reads the same answers.
	r, err := wire.Post(context.Background(), c, srv.URL, wiretest.Token, good.BatchId, body)
	if err != nil || r.Action != wire.Acked || !r.Ack.Duplicate {
		t.Fatalf("Post: %+v %v", r, err)
	}
	r, err = wire.Post(context.Background(), c, srv.URL, "wrong", good.BatchId, body)
	if err != nil || r.Action != wire.AuthRetry {
		t.Fatalf("Post with a bad token: %+v %v", r, err)
	}
}

func TestHandlerConcurrentDuplicates(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := wiretest.NewServer(t, pki, wiretest.Options{})
	c := client(pki)
	b := batch(5)
	body, _ := wire.EncodeBatch(b)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := wire.Post(context.Background(), c, srv.URL, wiretest.Token, b.BatchId, body)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Action == wire.Retry {
					continue
				}
				if r.Action == wire.Acked && !r.Ack.Duplicate {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
				return
			}
		}()
	}
	wg.Wait()
	if fresh != 1 || srv.Repeats() != 0 || len(srv.Batches()) != 1 {
		t.Fatalf("fresh acks %d, repeats %d, batches %d", fresh, srv.Repeats(), len(srv.Batches()))
	}
}

func TestHandlerOnBatchError(t *testing.T) {
	fail := true
	h, err := wire.NewHandler(wire.HandlerConfig{Tokens: map[string]string{"t": "p"}}, func(context.Context, string, *flowpb.Batch) error {
		if fail {
			return errors.New("store down")
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := batch(1)
	body, _ := wire.EncodeBatch(b)
	do := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, wire.Path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", wire.ContentType)
		req.Header.Set("Content-Encoding", wire.ContentEncoding)
		req.Header.Set(wire.HeaderBatchID, b.BatchId)
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, req)
		return &http.Response{StatusCode: w.code, Header: w.h}
	}
	if r := do(); r.StatusCode != 503 || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("got %d, Retry-After %q; want 503, 1", r.StatusCode, r.Header.Get("Retry-After"))
	}
	fail = false
	if r := do(); r.StatusCode != 200 {
		t.Fatalf("after recovery: %d", r.StatusCode)
	}
	if st := h.Stats(); st.Batches != 1 || st.Duplicates != 0 || st.Rejected[wire.ReasonHandler] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDedupBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	h, _ := wire.NewHandler(wire.HandlerConfig{
		Tokens: map[string]string{"t": "p"}, DedupSize: 3, DedupWindow: time.Minute,
		Now: func() time.Time { return now },
	}, func(context.Context, string, *flowpb.Batch) error { return nil }, nil)
	send := func(b *flowpb.Batch) wire.Ack {
		body, _ := wire.EncodeBatch(b)
		req, _ := http.NewRequest(http.MethodPost, wire.Path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", wire.ContentType)
		req.Header.Set("Content-Encoding", wire.ContentEncoding)
		req.Header.Set(wire.HeaderBatchID, b.BatchId)
		w := &recorder{h: http.Header{}}
		h.ServeHTTP(w, req)
		var a wire.Ack
		if err := json.Unmarshal(w.body.Bytes(), &a); err != nil {
			t.Fatalf("%d %s", w.code, w.body.String())
		}
		return a
	}
	bs := []*flowpb.Batch{batch(1), batch(1), batch(1), batch(1)}
	for _, b := range bs {
		send(b)
	}
	if n := h.Stats().DedupEntries; n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	if !send(bs[3]).Duplicate {
		t.Fatal("recent batch not a duplicate")
	}
	if send(bs[0]).Duplicate { // evicted by size
		t.Fatal("evicted batch still remembered")
	}
	now = now.Add(2 * time.Minute)
	if send(bs[3]).Duplicate || h.Stats().DedupEntries != 1 { // expired by age
		t.Fatal("expired batch still remembered")
	}
}

type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(c int)           { r.code = c }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

// TestMTLS checks the test server's client-certificate mode: a client with
// no certificate is refused at the handshake.
func TestMTLS(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := wiretest.NewServer(t, pki, wiretest.Options{MTLS: true})
	b := batch(1)
	body, _ := wire.EncodeBatch(b)
	if _, err := wire.Post(context.Background(), client(pki), srv.URL, wiretest.Token, b.BatchId, body); err == nil {
		t.Fatal("no client certificate, yet accepted")
	}
	cert, err := tls.LoadX509KeyPair(pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := pki.ClientTLS()
	tc.Certificates = []tls.Certificate{cert}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	if r, err := wire.Post(context.Background(), c, srv.URL, wiretest.Token, b.BatchId, body); err != nil || r.Action != wire.Acked {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestUnknownSchema(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := wiretest.NewServer(t, pki, wiretest.Options{})
	b := batch(3)
	body, _ := wire.EncodeBatch(b)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+wiretest.Token)
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set("Content-Encoding", wire.ContentEncoding)
	req.Header.Set(wire.HeaderBatchID, b.BatchId)
	req.Header.Set(wire.HeaderSchema, "2")
	resp, err := client(pki).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("status %d, want 415", resp.StatusCode)
	}
	if n := srv.Handler.Stats().Rejected[wire.ReasonSchema]; n != 1 {
		t.Fatalf("schema rejections %d", n)
	}
	if len(srv.Batches()) != 0 {
		t.Fatal("batch of an unknown schema handed over")
	}
}

// TestAlreadyKept: a batch OnBatch already has (its id in durable storage
// the handler's memory lost) is acknowledged as a duplicate and counted,
// and the next retry is answered from memory without calling OnBatch.
func TestAlreadyKept(t *testing.T) {
	calls := 0
	h, err := wire.NewHandler(wire.HandlerConfig{Tokens: map[string]string{wiretest.Token: "p"}},
		func(context.Context, string, *flowpb.Batch) error { calls++; return wire.ErrAlreadyKept }, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	b := batch(4)
	body, _ := wire.EncodeBatch(b)
	for i := range 2 {
		r, err := wire.Post(context.Background(), srv.Client(), srv.URL, wiretest.Token, b.BatchId, body)
		if err != nil || r.Action != wire.Acked || !r.Ack.Duplicate {
			t.Fatalf("try %d: %+v %v", i, r, err)
		}
	}
	if st := h.Stats(); calls != 1 || st.Duplicates != 2 || st.Batches != 0 {
		t.Fatalf("OnBatch calls %d, stats %+v", calls, st)
	}
}

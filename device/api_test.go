package device

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

const (
	readToken  = "proxy-token"
	writeToken = "operator-token"
)

// testDevices returns two valid devices, 7 then 3 (out of ID order).
func testDevices() []Device {
	return []Device{
		{ID: 7, Name: "edge-7", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, FlowType: "ipfix", SampleRate: 100},
		{ID: 3, Name: "core-3", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("2001:db8::3")},
			SNMP: &SNMP{Version: "v2c", Community: "public"}},
	}
}

func mustSet(t testing.TB, ds []Device) *Set {
	t.Helper()
	s, err := NewSet(ds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// apiServer serves a Handler over a MemStore holding testDevices.
func apiServer(t *testing.T) (*httptest.Server, *MemStore) {
	t.Helper()
	store := NewMemStore(mustSet(t, testDevices()))
	h, err := NewHandler(HandlerConfig{Read: TokenAuth(readToken), Write: TokenAuth(writeToken)}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(APIPath, h)
	mux.Handle(APIPath+"/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, store
}

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func errorOf(t *testing.T, a answer) string {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" {
		t.Errorf("error body %q is not {\"error\": ...}", a.body)
	}
	return e.Error
}

func TestHandlerList(t *testing.T) {
	srv, _ := apiServer(t)
	a := call(t, srv, "GET", APIPath, readToken, "")
	if a.status != 200 {
		t.Fatalf("GET: %d %s", a.status, a.body)
	}
	s, version, err := ParseDevicesJSON([]byte(a.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.All()[0].ID != 3 || s.ByID(3).SNMP.Community != "public" {
		t.Errorf("devices %+v", s.All())
	}
	etag := a.header.Get("ETag")
	if want, _ := ETag(s); etag != want || etag != `"`+version+`"` || strings.HasPrefix(etag, "W/") {
		t.Errorf("ETag %q, version %q, want strong %q", etag, version, want)
	}
	if !strings.Contains(a.body, `{"id":3,`) || strings.Index(a.body, `"id":3`) > strings.Index(a.body, `"id":7`) {
		t.Errorf("devices not in ID order: %s", a.body)
	}

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		a := call(t, srv, "GET", APIPath, readToken, "", "If-None-Match", inm)
		if a.status != http.StatusNotModified || a.body != "" || a.header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q ETag %q, want 304 and no body", inm, a.status, a.body, a.header.Get("ETag"))
		}
	}
	if a := call(t, srv, "GET", APIPath+"?proxy=edge1", readToken, "", "If-None-Match", `"other"`); a.status != 200 {
		t.Errorf("other ETag, ?proxy=: %d", a.status)
	}
	if a := call(t, srv, "HEAD", APIPath, readToken, ""); a.status != 200 || a.body != "" || a.header.Get("ETag") != etag {
		t.Errorf("HEAD: %d %q", a.status, a.body)
	}
	if a := call(t, srv, "GET", APIPath, writeToken, ""); a.status != 200 {
		t.Errorf("write token reading: %d", a.status)
	}
}

// TestETagCanonical: the ETag depends on the devices, not on the order
// they were given in or on how an address was written.
func TestETagCanonical(t *testing.T) {
	ds := testDevices()
	a, _ := ETag(mustSet(t, ds))
	rev := []Device{ds[1], ds[0]}
	rev[0].IPs = []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.3"), netip.MustParseAddr("2001:db8::3")}
	b, _ := ETag(mustSet(t, rev))
	if a != b {
		t.Errorf("same devices, ETags %s and %s", a, b)
	}
	ds[0].SampleRate++
	if c, _ := ETag(mustSet(t, ds)); c == a {
		t.Error("ETag did not change with the devices")
	}
	empty, _ := NewSet(nil)
	if b, _ := CanonicalJSON(empty); string(b) != "[]" {
		t.Errorf("empty list encodes as %s, want []", b)
	}
}

func TestHandlerAuth(t *testing.T) {
	srv, _ := apiServer(t)
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", APIPath, "", "", 401},
		{"GET", APIPath, "wrong", "", 401},
		{"GET", APIPath + "/3", "", "", 401},
		{"POST", APIPath, "", `{}`, 401},
		{"POST", APIPath, readToken, `{"id":9,"name":"x","ips":["192.0.2.9"]}`, 403},
		{"PUT", APIPath + "/3", readToken, `{"name":"x","ips":["192.0.2.9"]}`, 403},
		{"DELETE", APIPath + "/3", readToken, "", 403},
	} {
		a := call(t, srv, tc.method, tc.path, tc.token, tc.body)
		if a.status != tc.want {
			t.Errorf("%s %s token %q: %d, want %d", tc.method, tc.path, tc.token, a.status, tc.want)
			continue
		}
		errorOf(t, a)
		if tc.want == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", tc.method, tc.path)
		}
	}
	// Nothing changed.
	if a := call(t, srv, "GET", APIPath+"/3", readToken, ""); !strings.Contains(a.body, "core-3") {
		t.Errorf("device 3 after refused writes: %s", a.body)
	}

	// Without Write, the list is read-only even for a known token.
	h, _ := NewHandler(HandlerConfig{Read: TokenAuth(readToken)}, NewMemStore(nil), nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("DELETE", APIPath+"/3", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	h.ServeHTTP(rec, req)
	if rec.Code != 403 {
		t.Errorf("read-only handler, DELETE: %d, want 403", rec.Code)
	}
	if TokenAuth("")("") || TokenAuth("a", "b")("c") || !TokenAuth("a", "b")("b") {
		t.Error("TokenAuth")
	}
}

func TestHandlerCRUD(t *testing.T) {
	srv, store := apiServer(t)
	etag := func() string {
		t.Helper()
		a := call(t, srv, "GET", APIPath, readToken, "")
		if a.status != 200 {
			t.Fatalf("GET: %d", a.status)
		}
		return a.header.Get("ETag")
	}
	tag0 := etag()

	// Add.
	a := call(t, srv, "POST", APIPath, writeToken, `{"id":9,"name":"new-9","ips":["192.0.2.9"],"flow_type":"sflow5"}`)
	if a.status != http.StatusCreated || a.header.Get("Location") != APIPath+"/9" {
		t.Fatalf("POST: %d %s, Location %q", a.status, a.body, a.header.Get("Location"))
	}
	var d Device
	if err := json.Unmarshal([]byte(a.body), &d); err != nil || d.ID != 9 || d.Name != "new-9" {
		t.Errorf("POST answer %s (%v)", a.body, err)
	}
	tag1 := etag()
	if tag1 == tag0 {
		t.Error("ETag unchanged after an add")
	}
	if a := call(t, srv, "GET", APIPath, readToken, "", "If-None-Match", tag0); a.status != 200 {
		t.Errorf("old ETag after a change: %d, want 200", a.status)
	}

	// Change, with or without the id in the body.
	for _, body := range []string{`{"id":9,"name":"renamed","ips":["192.0.2.99"]}`, `{"name":"renamed","ips":["192.0.2.99"]}`} {
		a = call(t, srv, "PUT", APIPath+"/9", writeToken, body)
		if a.status != 200 || !strings.Contains(a.body, `"renamed"`) {
			t.Fatalf("PUT %s: %d %s", body, a.status, a.body)
		}
	}
	s, _ := store.List(t.Context())
	if d := s.ByID(9); d == nil || d.Name != "renamed" || s.ByIP(netip.MustParseAddr("192.0.2.9")) != nil || s.ByIP(netip.MustParseAddr("192.0.2.99")) != d {
		t.Errorf("after PUT: %+v", s.All())
	}
	tag2 := etag()
	if tag2 == tag1 {
		t.Error("ETag unchanged after a change")
	}
	if a := call(t, srv, "GET", APIPath+"/9", readToken, ""); a.status != 200 || !strings.Contains(a.body, `"renamed"`) {
		t.Errorf("GET one: %d %s", a.status, a.body)
	}

	// Delete.
	if a := call(t, srv, "DELETE", APIPath+"/9", writeToken, ""); a.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	if tag3 := etag(); tag3 != tag0 {
		t.Errorf("ETag %s after deleting what was added, want the first one %s", tag3, tag0)
	}
	if a := call(t, srv, "GET", APIPath+"/9", readToken, ""); a.status != 404 {
		t.Errorf("GET deleted device: %d", a.status)
	}
}

func TestHandlerErrors(t *testing.T) {
	srv, store := apiServer(t)
	before, _ := store.List(t.Context())
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		msg                      string // in the error
	}{
		{"duplicate address", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.7"]}`, 400, "already device 7"},
		{"duplicate mapped address", "POST", APIPath, `{"id":9,"name":"x","ips":["::ffff:192.0.2.7"]}`, 400, "already device 7"},
		{"address twice", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.9","192.0.2.9"]}`, 400, "twice"},
		{"id in use", "POST", APIPath, `{"id":7,"name":"x","ips":["192.0.2.9"]}`, 409, "already exists"},
		{"no id", "POST", APIPath, `{"name":"x","ips":["192.0.2.9"]}`, 400, "id"},
		{"no name", "POST", APIPath, `{"id":9,"ips":["192.0.2.9"]}`, 400, "name"},
		{"no address", "POST", APIPath, `{"id":9,"name":"x"}`, 400, "ips"},
		{"bad address", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.300"]}`, 400, "body"},
		{"bad flow type", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.9"],"flow_type":"netflow7"}`, 400, "flow_type"},
		{"bad snmp", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.9"],"snmp":{"version":"v3"}}`, 400, "snmp"},
		{"unknown key", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.9"],"sample":5}`, 400, "unknown field"},
		{"not JSON", "POST", APIPath, `id: 9`, 400, "body"},
		{"trailing data", "POST", APIPath, `{"id":9,"name":"x","ips":["192.0.2.9"]} {}`, 400, "after"},
		{"too large", "POST", APIPath, `{"name":"` + strings.Repeat("x", DefaultMaxDeviceBytes) + `"}`, 413, "over"},
		{"change unknown", "PUT", APIPath + "/42", `{"name":"x","ips":["192.0.2.9"]}`, 404, "no device"},
		{"change id mismatch", "PUT", APIPath + "/7", `{"id":8,"name":"x","ips":["192.0.2.9"]}`, 400, "not the path"},
		{"change to taken address", "PUT", APIPath + "/7", `{"name":"x","ips":["192.0.2.3"]}`, 400, "already device 3"},
		{"delete unknown", "DELETE", APIPath + "/42", "", 404, "no device"},
		{"get unknown", "GET", APIPath + "/42", "", 404, "no device"},
		{"bad id", "GET", APIPath + "/abc", "", 404, "no such resource"},
		{"id 0", "DELETE", APIPath + "/0", "", 404, "no such resource"},
		{"nested path", "GET", APIPath + "/7/x", "", 404, "no such resource"},
		{"PUT list", "PUT", APIPath, `{}`, 405, "only"},
		{"POST device", "POST", APIPath + "/7", `{}`, 405, "only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, srv, tc.method, tc.path, writeToken, tc.body)
			if a.status != tc.want {
				t.Fatalf("%d %s, want %d", a.status, a.body, tc.want)
			}
			if msg := errorOf(t, a); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want it to say %q", msg, tc.msg)
			}
			if tc.want == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if after, _ := store.List(t.Context()); after != before {
		t.Error("a refused change changed the list")
	}
}

func TestSetWithWithout(t *testing.T) {
	var empty *Set
	s, err := empty.With(testDevices()[0], PutCreate)
	if err != nil || s.Len() != 1 {
		t.Fatalf("With on nil set: %v", err)
	}
	if _, err := s.With(testDevices()[0], PutMode(0)); err == nil {
		t.Error("bad PutMode accepted")
	}
	if _, err := s.Without(1); err == nil {
		t.Error("Without unknown id")
	}
	if s2, err := s.Without(7); err != nil || s2.Len() != 0 || s.Len() != 1 {
		t.Errorf("Without: %v, %d, original %d", err, s2.Len(), s.Len())
	}
}

func TestParseDevicesJSON(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"version":"v","devices":[]}`, ""},
		{`{"devices":[{"id":1,"name":"a","ips":["192.0.2.1"],"future_field":true}],"also":1}`, ""},
		{`{}`, `no "devices"`},
		{`{"devices":null}`, `no "devices"`},
		{`null`, `no "devices"`},
		{`{"error":"maintenance"}`, `no "devices"`},
		{`[]`, "cannot unmarshal"},
		{`{"devices":[]} x`, "after"},
		{`{"devices":[{"id":1,"name":"a","ips":["192.0.2.1"]},{"id":2,"name":"b","ips":["192.0.2.1"]}]}`, "192.0.2.1"},
		{`{"devices":[{"id":1,"name":"a","ips":["192.0.2.1"]},{"id":1,"name":"b","ips":["192.0.2.2"]}]}`, "id 1"},
	} {
		_, _, err := ParseDevicesJSON([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

// FuzzParseDevicesJSON: no input panics, and a list accepted is valid
// (every device, unique IDs and addresses) and survives a round trip
// through its canonical JSON unchanged.
func FuzzParseDevicesJSON(f *testing.F) {
	canon, _ := CanonicalJSON(mustSet(f, testDevices()))
	f.Add([]byte(`{"version":"x","devices":` + string(canon) + `}`))
	f.Add([]byte(`{"devices":[]}`))
	f.Add([]byte(`{"devices":[{"id":1,"name":"a","ips":["192.0.2.1","::ffff:192.0.2.2","fe80::1%eth0"],"flow_type":"netflow9",` +
		`"snmp":{"ip":"192.0.2.1","version":"v3","v3":{"user":"u","auth_protocol":"SHA","priv_protocol":"AES"}}}]}`))
	f.Add([]byte(`{"devices":[{"id":1,"name":"a","ips":["192.0.2.1"]},{"id":2,"name":"b","ips":["192.0.2.1"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := ParseDevicesJSON(data)
		if err != nil {
			return
		}
		ids := map[uint64]bool{}
		ips := map[netip.Addr]bool{}
		for _, d := range s.All() {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted an invalid device %+v: %v", d, err)
			}
			if ids[d.ID] {
				t.Fatalf("accepted id %d twice", d.ID)
			}
			ids[d.ID] = true
			for _, ip := range d.IPs {
				if ips[ip.Unmap()] {
					t.Fatalf("accepted address %v twice", ip)
				}
				ips[ip.Unmap()] = true
				if s.ByIP(ip) != d {
					t.Fatalf("address %v does not find its device", ip)
				}
			}
		}
		c1, err := CanonicalJSON(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, _, err := ParseDevicesJSON([]byte(`{"devices":` + string(c1) + `}`))
		if err != nil {
			t.Fatalf("canonical form refused: %v\n%s", err, c1)
		}
		c2, _ := CanonicalJSON(s2)
		if !bytes.Equal(c1, c2) {
			t.Fatalf("round trip changed the list:\n%s\n%s", c1, c2)
		}
	})
}

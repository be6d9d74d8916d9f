package monitor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Lines writes a round as Influx line protocol, with the seed's
// measurements, tags and fields:
//
//	<measurement>,name=N,ip=I,port=P,state=S status=1,connected=2,unregistered=0 <ns>
//	<device measurement>,proxy_name=N,proxy_ip=I,device_id=D,device_name=M,device_ip=A,flow=F In1=..,In15=..,Out1=..,Out15=..,LastSeenAge=.. <ns>
//
// Device lines are written for answers only, up to MaxDevicesPerProxy
// per proxy. Empty tag values are left out, as the protocol requires.
func (m *Monitor) Lines(results []Result) []byte {
	var b bytes.Buffer
	for _, r := range results {
		ts := strconv.FormatInt(r.Time.UnixNano(), 10)
		t := r.Target
		b.WriteString(escMeasurement(m.cfg.Push.Measurement))
		tag(&b, "name", t.Name)
		tag(&b, "ip", t.IP)
		tag(&b, "port", strconv.Itoa(t.Port))
		tag(&b, "state", r.State)
		connected, unregistered := 0, 0
		if r.Health != nil {
			connected, unregistered = len(r.Health.Devices), len(r.Health.Unregistered)
		}
		fmt.Fprintf(&b, " status=%d,connected=%d,unregistered=%d %s\n", r.Status, connected, unregistered, ts)
		if r.Health == nil {
			continue
		}
		for i, d := range r.Health.Devices {
			if i >= m.cfg.MaxDevicesPerProxy {
				break
			}
			b.WriteString(escMeasurement(m.cfg.Push.DeviceMeasurement))
			tag(&b, "proxy_name", t.Name)
			tag(&b, "proxy_ip", t.IP)
			tag(&b, "device_id", strconv.FormatUint(d.ID, 10))
			tag(&b, "device_name", d.Name)
			if len(d.Sources) > 0 {
				tag(&b, "device_ip", d.Sources[0].String())
			}
			tag(&b, "flow", d.FlowType)
			b.WriteString(" In1=")
			b.WriteString(num(d.In1))
			b.WriteString(",In15=")
			b.WriteString(num(d.In15))
			b.WriteString(",Out1=")
			b.WriteString(num(d.Out1))
			b.WriteString(",Out15=")
			b.WriteString(num(d.Out15))
			if !d.LastSeen.IsZero() {
				b.WriteString(",LastSeenAge=")
				b.WriteString(num(r.Time.Sub(d.LastSeen).Seconds()))
			}
			b.WriteByte(' ')
			b.WriteString(ts)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

var (
	measurementEsc = strings.NewReplacer(`\`, `\\`, ",", `\,`, " ", `\ `, "\n", `\n`)
	tagEsc         = strings.NewReplacer(`\`, `\\`, ",", `\,`, " ", `\ `, "=", `\=`, "\n", `\n`)
)

func escMeasurement(s string) string { return measurementEsc.Replace(s) }

func tag(b *bytes.Buffer, k, v string) {
	if v == "" {
		return
	}
	b.WriteByte(',')
	b.WriteString(k)
	b.WriteByte('=')
	b.WriteString(tagEsc.Replace(v))
}

// push POSTs the round's lines, retrying failures (no answer or not 2xx)
// up to Attempts times with doubling backoff.
func (m *Monitor) push(ctx context.Context, results []Result) error {
	body := m.Lines(results)
	wait := m.cfg.Push.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		if err = m.pushOnce(ctx, body); err == nil {
			m.pushOK.Add(1)
			return nil
		}
		if attempt >= m.cfg.Push.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			m.pushErrors.Add(1)
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
	m.pushErrors.Add(1)
	return fmt.Errorf("monitor: push: %d attempts: %w", m.cfg.Push.Attempts, err)
}

func (m *Monitor) pushOnce(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Push.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.cfg.Push.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range m.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

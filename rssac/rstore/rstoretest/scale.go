package rstoretest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
)

// ScaleConfig sizes Scale.
type ScaleConfig struct {
	// VPs is the number of vantage points; Slots the number of 5-minute
	// runs each; PerRun the observations per run. Workers is how many
	// AddRun calls run at once (uploads arrive in parallel).
	VPs, Slots, PerRun, Workers int
	// From is the first slot.
	From time.Time
}

// MonthSlots is the number of 5-minute slots in a 31-day month.
const MonthSlots = 31 * 24 * 12

// ScaleFromEnv is the scale — 20 vantage points, a 31-day month
// of runs, 57 observations a run, one writer — with each number
// overridable by NETPULSE_RSSAC_VPS, NETPULSE_RSSAC_SLOTS,
// NETPULSE_RSSAC_PER_RUN and NETPULSE_RSSAC_WORKERS.
func ScaleFromEnv() ScaleConfig {
	c := ScaleConfig{VPs: 20, Slots: MonthSlots, PerRun: 57, Workers: 1, From: Oct}
	for _, v := range []struct {
		env string
		p   *int
	}{{"NETPULSE_RSSAC_VPS", &c.VPs}, {"NETPULSE_RSSAC_SLOTS", &c.Slots}, {"NETPULSE_RSSAC_PER_RUN", &c.PerRun}, {"NETPULSE_RSSAC_WORKERS", &c.Workers}} {
		if n, err := strconv.Atoi(os.Getenv(v.env)); err == nil && n > 0 {
			*v.p = n
		}
	}
	return c
}

// Scale loads cfg's runs into s in slot order (every VP's run of a slot,
// then the next slot: the order they arrive in), then streams every
// observation of the range back, and reports runs/s and obs/s of the
// load, and the seconds and obs/s of the stream. It is meant for
// -benchtime 1x: each iteration needs an empty store, which open gives.
func Scale(b *testing.B, open func(b *testing.B) rstore.Store, cfg ScaleConfig) {
	ctx := context.Background()
	// One template run per VP, its slot set per run: building the runs
	// costs next to nothing, so the figures are the store's.
	templates := make([][]rssac.Observation, cfg.VPs)
	vps := make([]string, cfg.VPs)
	for v := range templates {
		vps[v] = strconv.Itoa(100 + v)
		templates[v] = Synth(vps[v], cfg.From, cfg.PerRun)
	}
	total := int64(cfg.VPs) * int64(cfg.Slots)
	to := cfg.From.Add(time.Duration(cfg.Slots) * 5 * time.Minute)
	for b.Loop() {
		b.StopTimer()
		s := open(b)
		b.StartTimer()
		var next, done atomic.Int64
		var wg sync.WaitGroup
		errc := make(chan error, cfg.Workers)
		// marks[d] is when the (d+1)th tenth of the runs was stored, to
		// show how the rate changes as the tables grow.
		var marks [10]atomic.Int64
		tenth := max(total/10, 1)
		start := time.Now()
		for range cfg.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				obs := make([]rssac.Observation, cfg.PerRun)
				for {
					i := next.Add(1) - 1
					if i >= total {
						return
					}
					v, slot := int(i%int64(cfg.VPs)), cfg.From.Add(time.Duration(i/int64(cfg.VPs))*5*time.Minute)
					copy(obs, templates[v])
					for j := range obs {
						obs[j].Slot = slot
					}
					if err := s.AddRun(ctx, Key(vps[v], slot), obs); err != nil {
						errc <- err
						next.Store(total)
						return
					}
					if n := done.Add(1); n%tenth == 0 && n/tenth <= 10 {
						marks[n/tenth-1].Store(int64(time.Since(start)))
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		load := time.Since(start)
		var rates []string
		prev := int64(0)
		for i := range marks {
			if m := marks[i].Load(); m > prev {
				rates = append(rates, strconv.FormatFloat(float64(tenth)/time.Duration(m-prev).Seconds(), 'f', 0, 64))
				prev = m
			}
		}
		b.Logf("runs/s by tenth of the load: %s", strings.Join(rates, " "))
		start = time.Now()
		var n int64
		for _, err := range s.Observations(ctx, cfg.From, to) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		stream := time.Since(start)
		if want := total * int64(cfg.PerRun); n != want {
			b.Fatalf("streamed %d observations, want %d", n, want)
		}
		// The monthly report as the collector makes it: Compute over the
		// store's stream of the period.
		start = time.Now()
		var iterErr error
		rep, err := rssac.Compute(rssac.Period{From: cfg.From, To: to, Kind: rssac.PeriodMonth}, rssac.DefaultConfig(),
			func(yield func(rssac.Observation) bool) {
				for o, err := range s.Observations(ctx, cfg.From, to) {
					if err != nil {
						iterErr = err
						return
					}
					if !yield(o) {
						return
					}
				}
			})
		report := time.Since(start)
		if err == nil {
			err = iterErr
		}
		if err != nil {
			b.Fatal(err)
		}
		if rep.Counts.Observations+rep.Counts.Outside+rep.Counts.Invalid != n {
			b.Fatalf("the report saw %d+%d+%d observations, the stream %d", rep.Counts.Observations, rep.Counts.Outside, rep.Counts.Invalid, n)
		}
		b.ReportMetric(report.Seconds(), "report_s")
		b.ReportMetric(float64(total)/load.Seconds(), "runs/s")
		b.ReportMetric(float64(n)/load.Seconds(), "load_obs/s")
		b.ReportMetric(load.Seconds(), "load_s")
		b.ReportMetric(stream.Seconds(), "stream_s")
		b.ReportMetric(float64(n)/stream.Seconds(), "stream_obs/s")
		b.Logf("%d VPs × %d slots × %d = %d observations in %d runs (%d writers): load %v (%.0f runs/s, %.0f obs/s); stream back %v (%.0f obs/s); monthly report %v",
			cfg.VPs, cfg.Slots, cfg.PerRun, n, total, cfg.Workers, load.Round(time.Millisecond), float64(total)/load.Seconds(), float64(n)/load.Seconds(),
			stream.Round(time.Millisecond), float64(n)/stream.Seconds(), report.Round(time.Millisecond))
	}
}

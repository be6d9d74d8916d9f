package sshpoll

import "github.com/prometheus/client_golang/prometheus"

// The metrics, built at scrape time. The collector label is a configured
// name and result one of the Kinds or "ok": both bounded.
var (
	descPolls    = prometheus.NewDesc("netpulse_ifwatch_sshpoll_polls_total", "Polls of a remote collector's stats file, by result: ok or the kind of source error.", []string{"collector", "result"}, nil)
	descBadRows  = prometheus.NewDesc("netpulse_ifwatch_sshpoll_bad_rows_total", "Rows of the stats files skipped because they did not parse.", []string{"collector"}, nil)
	descUp       = prometheus.NewDesc("netpulse_ifwatch_sshpoll_up", "1 if the last poll of the collector read and parsed its stats file, else 0.", []string{"collector"}, nil)
	descRows     = prometheus.NewDesc("netpulse_ifwatch_sshpoll_rows", "Good rows in the stats file at the last successful poll.", []string{"collector"}, nil)
	descModTime  = prometheus.NewDesc("netpulse_ifwatch_sshpoll_file_modified_timestamp_seconds", "Modification time of the stats file at the last successful poll, Unix time by the collector's clock.", []string{"collector"}, nil)
	descDuration = prometheus.NewDesc("netpulse_ifwatch_sshpoll_poll_duration_seconds", "How long the last poll of the collector took, retries included.", []string{"collector"}, nil)
	descRounds   = prometheus.NewDesc("netpulse_ifwatch_sshpoll_rounds_total", "Rounds of polls of every collector completed.", nil, nil)
)

// allResults lists the result label values, so that every series exists
// from the first scrape.
var allResults = []Kind{"", KindUnreachable, KindHostKey, KindAuth, KindMissing, KindRead, KindTooLarge, KindParse}

type metrics struct{ p *Poller }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	p := m.p
	p.mu.Lock()
	defer p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descRounds, prometheus.CounterValue, float64(p.rounds))
	for _, c := range p.collectors {
		name := c.cfg.Name
		for _, k := range allResults {
			result := string(k)
			if k == "" {
				result = "ok"
			}
			ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(c.results[k]), name, result)
		}
		ch <- prometheus.MustNewConstMetric(descBadRows, prometheus.CounterValue, float64(c.badRows), name)
		up := 0.0
		if c.last != nil {
			ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, c.last.Duration.Seconds(), name)
			if c.last.Err == nil {
				up = 1
				ch <- prometheus.MustNewConstMetric(descRows, prometheus.GaugeValue, float64(len(c.last.Rows)), name)
				ch <- prometheus.MustNewConstMetric(descModTime, prometheus.GaugeValue, float64(c.last.ModTime.Unix()), name)
			}
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, name)
	}
}

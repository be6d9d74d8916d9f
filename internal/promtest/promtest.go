// Package promtest checks a component's Prometheus metrics in tests: every
// metric passes promlint, has the component's prefix, and the ones a test
// names are exported.
package promtest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Lint gathers g and fails t for every promlint problem, every metric
// without prefix (when prefix is not empty; the Go runtime's go_ and
// process_ metrics are exempt) and every name in want that is
// not exported.
func Lint(t testing.TB, g prometheus.Gatherer, prefix string, want ...string) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		std := strings.HasPrefix(mf.GetName(), "go_") || strings.HasPrefix(mf.GetName(), "process_")
		if prefix != "" && !std && !strings.HasPrefix(mf.GetName(), prefix) {
			t.Errorf("metric %s lacks the %s prefix", mf.GetName(), prefix)
		}
	}
	for _, w := range want {
		if !names[w] {
			t.Errorf("metric %s not exported", w)
		}
	}
}

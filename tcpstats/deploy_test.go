package tcpstats

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

const chartDir = "../deploy/helm/netpulse-tcpstats"

// renderChart renders the chart's templates with the subset of Helm's
// template language they use (.Values, .Release, toYaml, nindent), since
// helm is not packaged in Debian.
func renderChart(t *testing.T) []map[string]any {
	t.Helper()
	var values map[string]any
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var chart map[string]any
	raw, _ = os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err := yaml.Unmarshal(raw, &chart); err != nil || chart["apiVersion"] != "v2" {
		t.Fatalf("Chart.yaml: %v %v", err, chart)
	}
	funcs := template.FuncMap{
		"toYaml": func(v any) string {
			b, _ := yaml.Marshal(v)
			return strings.TrimSuffix(string(b), "\n")
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
	}
	files, _ := filepath.Glob(filepath.Join(chartDir, "templates", "*.yaml"))
	var docs []map[string]any
	for _, f := range files {
		tmpl, err := template.New(filepath.Base(f)).Funcs(funcs).Option("missingkey=error").ParseFiles(f)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		data := map[string]any{"Values": values, "Release": map[string]any{"Name": "test"}, "Chart": chart}
		if err := tmpl.Execute(&out, data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatalf("%s renders invalid YAML: %v\n%s", f, err, out.String())
		}
		docs = append(docs, doc)
	}
	return docs
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func TestHelmChart(t *testing.T) {
	docs := renderChart(t)
	if len(docs) != 1 || docs[0]["kind"] != "DaemonSet" {
		t.Fatalf("want one DaemonSet, got %v", docs)
	}
	spec := dig(docs[0], "spec", "template", "spec")
	if dig(spec, "hostNetwork") != true {
		t.Error("hostNetwork is not true")
	}
	c := dig(spec, "containers", 0)
	sc := dig(c, "securityContext")
	if dig(sc, "privileged") != false {
		t.Error("container must not be privileged")
	}
	add, _ := dig(sc, "capabilities", "add").([]any)
	drop, _ := dig(sc, "capabilities", "drop").([]any)
	if len(add) != 1 || add[0] != "NET_RAW" || len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("capabilities: add %v drop %v, want only NET_RAW after dropping ALL", add, drop)
	}
	args := dig(c, "args").([]any)
	var joined []string
	for _, a := range args {
		joined = append(joined, a.(string))
	}
	s := strings.Join(joined, " ")
	for _, want := range []string{"tcpstats", "--interface=eth0", "--listen=:9469", "--filter= "} {
		if !strings.Contains(s, want) {
			t.Errorf("args %q lack %s", s, want)
		}
	}
	if dig(c, "ports", 0, "containerPort") != 9469 {
		t.Errorf("containerPort %v", dig(c, "ports", 0, "containerPort"))
	}
	if dig(c, "readinessProbe", "httpGet", "path") != "/readyz" || dig(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Error("probes must use /readyz and /healthz")
	}
}

// TestDashboardMetrics checks every metric the Grafana dashboard queries
// is one Metrics exports (with the histogram suffixes).
func TestDashboardMetrics(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/tcpstats.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct{ List []struct{ Query any } }
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	known := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	NewMetrics(MetricsConfig{}).Describe(ch)
	close(ch)
	name := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		n := name.FindStringSubmatch(d.String())[1]
		known[n] = true
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			known[n+suf] = true
		}
	}
	used := regexp.MustCompile(`netpulse_[a-z_]+`)
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if s, ok := v.Query.(string); ok {
			exprs = append(exprs, s)
		}
	}
	n := 0
	for _, e := range exprs {
		for _, m := range used.FindAllString(e, -1) {
			n++
			if !known[m] {
				t.Errorf("dashboard queries %s, which tcpstats does not export (in %q)", m, e)
			}
		}
	}
	if n == 0 {
		t.Error("the dashboard queries no netpulse metric")
	}
}

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/netpulse/netpulse/rssac"
)

const rssacUsage = `usage: netpulse rssac report (-month 2026-10 | -week 2026-W44) [-format markdown|json]
                            [-out DIR] [-api URL] [-token_file FILE]

Asks a collector's rssac part (docs/rssac.md) for the RSSAC047 report of a
calendar month or an ISO week: pass/fail per root server and for the root
server system, with the numbers and measurement counts behind them. With
-out, writes both rssac-<period>.md and rssac-<period>.json into DIR;
otherwise prints one format. The token comes from NETPULSE_API_TOKEN or
-token_file.

Flags:
`

// cmdRSSAC runs `netpulse rssac report`.
func cmdRSSAC(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "report" {
		fmt.Fprint(stderr, rssacUsage)
		return 2
	}
	fs := flag.NewFlagSet("rssac report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	month := fs.String("month", "", "report on this calendar `month` (YYYY-MM)")
	week := fs.String("week", "", "report on this ISO `week` (YYYY-Www)")
	format := fs.String("format", "markdown", "markdown or json (without -out)")
	out := fs.String("out", "", "write both formats into this `directory`")
	api := fs.String("api", "http://127.0.0.1:8080", "the collector's `URL`")
	tokenFile := fs.String("token_file", "netpulse-data/api-token", "`file` holding an operator's token")
	fs.Usage = func() {
		fmt.Fprint(stderr, rssacUsage)
		fs.PrintDefaults()
	}
	if _, err := parse(fs, args[1:]); err != nil {
		return 2
	}
	if (*month == "") == (*week == "") {
		fmt.Fprintln(stderr, "netpulse rssac report: give exactly one of -month YYYY-MM or -week YYYY-Www")
		return 2
	}
	name := *month
	if name == "" {
		name = *week
	}
	// Check the period here, so a typo gets a clear message without a
	// round trip.
	if _, err := rssac.ParsePeriod(name); err != nil {
		fmt.Fprintln(stderr, "netpulse rssac report:", err)
		return 2
	}
	q := url.Values{}
	if *month != "" {
		q.Set("month", *month)
	} else {
		q.Set("week", *week)
	}
	const who = "netpulse rssac report"
	const path = "/api/v1/rssac/report"
	if *out == "" {
		if *format != "markdown" && *format != "json" {
			fmt.Fprintf(stderr, "%s: -format %q: want markdown or json\n", who, *format)
			return 2
		}
		q.Set("format", *format)
		return apiGet(stdout, stderr, who, *api, *tokenFile, path, q)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, who+":", err)
		return 1
	}
	for _, f := range []struct{ format, ext string }{{"markdown", "md"}, {"json", "json"}} {
		q.Set("format", f.format)
		var b bytes.Buffer
		if code := apiGet(&b, stderr, who, *api, *tokenFile, path, q); code != 0 {
			return code
		}
		file := filepath.Join(*out, "rssac-"+name+"."+f.ext)
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(stderr, who+":", err)
			return 1
		}
		fmt.Fprintln(stdout, file)
	}
	return 0
}

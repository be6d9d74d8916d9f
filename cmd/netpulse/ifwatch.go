package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const ifwatchUsage = `usage: netpulse ifwatch report [-since 10m | -month 2026-11 | -rolling] [-format table|json|csv]
                              [-api URL] [-token_file FILE]

Asks a collector's ifwatch (docs/ifwatch.md): what went down and came back
up in the last -since (default 10m); with -month, the downtime per
exporter+interface and in total over that calendar month, with
availability; with -rolling, over the last 30 days. The token comes from
NETPULSE_API_TOKEN or -token_file (default: netpulse run's
netpulse-data/api-token).

Flags:
`

// cmdIfwatch runs `netpulse ifwatch report`.
func cmdIfwatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "report" {
		fmt.Fprint(stderr, ifwatchUsage)
		return 2
	}
	fs := flag.NewFlagSet("ifwatch report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Duration("since", 10*time.Minute, "report what went down and up in this last `duration`")
	month := fs.String("month", "", "downtime over this calendar `month` (YYYY-MM)")
	rolling := fs.Bool("rolling", false, "downtime over the last 30 days")
	format := fs.String("format", "table", "table, json or csv")
	api := fs.String("api", "http://127.0.0.1:8080", "the collector's `URL`")
	tokenFile := fs.String("token_file", "netpulse-data/api-token", "`file` holding an operator's token")
	if !parseFlags(fs, args[1:], ifwatchUsage, stderr, nil) {
		return 2
	}
	q := url.Values{"format": {*format}}
	path := "/api/v1/ifwatch/recent"
	switch {
	case *month != "":
		path = "/api/v1/ifwatch/downtime"
		q.Set("month", *month)
	case *rolling:
		path = "/api/v1/ifwatch/downtime"
	default:
		q.Set("since", since.String())
	}
	return apiGet(stdout, stderr, "netpulse ifwatch", *api, *tokenFile, path, q)
}

// apiGet asks a collector's API for path?q with an operator's token (from
// NETPULSE_API_TOKEN, else tokenFile) and copies the answer to stdout.
// It returns the command's exit status.
func apiGet(stdout, stderr io.Writer, who, api, tokenFile, path string, q url.Values) int {
	token := strings.TrimSpace(os.Getenv("NETPULSE_API_TOKEN"))
	if token == "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: no token: set NETPULSE_API_TOKEN or -token_file (%v)\n", who, err)
			return 2
		}
		token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(api, "/")+path+"?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintln(stderr, who+":", err)
		return 2
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, who+":", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "%s: %s: %s\n", who, resp.Status, strings.TrimSpace(string(b)))
		return 1
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintln(stderr, who+":", err)
		return 1
	}
	return 0
}

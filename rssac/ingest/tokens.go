package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// tokenEntry is a token's digest and its vantage point.
type tokenEntry struct {
	sum [sha256.Size]byte
	vp  string
}

func newTokenEntry(tok, vp string) tokenEntry {
	return tokenEntry{sum: sha256.Sum256([]byte(tok)), vp: vp}
}

// authenticate returns the vantage point of tok. It compares tok with
// every known token in constant time, through their digests so that
// lengths leak nothing either.
func (in *Ingester) authenticate(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(tok))
	vp, ok := "", false
	for _, e := range in.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
			vp, ok = e.vp, true
		}
	}
	return vp, ok
}

// MinTokenLen is the shortest token ReadTokens accepts.
const MinTokenLen = 16

// ReadTokens reads a probe tokens file: one vantage point per line,
// "NAME TOKEN", # for comments, as the proxy tokens file. NAME is the
// vantage point's id, as its result documents carry it ("vp"); names and
// tokens must be unique. It returns token → name.
func ReadTokens(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("probe tokens: %w", err)
	}
	tokens := map[string]string{}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) != 2:
			return nil, fmt.Errorf("probe tokens %s:%d: want \"NAME TOKEN\"", path, n)
		case !ValidVP(f[0]):
			return nil, fmt.Errorf("probe tokens %s:%d: vantage point %q: %s", path, n, f[0], vpRule)
		case len(f[1]) < MinTokenLen:
			return nil, fmt.Errorf("probe tokens %s:%d: token of vantage point %q shorter than %d characters", path, n, f[0], MinTokenLen)
		case names[f[0]] || tokens[f[1]] != "":
			return nil, fmt.Errorf("probe tokens %s:%d: vantage point %q or its token listed twice", path, n, f[0])
		}
		names[f[0]] = true
		tokens[f[1]] = f[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("probe tokens %s: %w", path, err)
	}
	return tokens, nil
}

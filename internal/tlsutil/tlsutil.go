// Package tlsutil builds the TLS client settings every netpulse client
// shares (collector sink, device puller, Kafka sink) from PEM files, with
// errors that name the configuration keys.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// ClientConfig returns a TLS 1.2+ client configuration trusting the CAs in
// caFile (the system's roots when empty) and presenting the certificate in
// certFile/keyFile for mutual TLS (both or neither). section prefixes the
// keys in error messages, e.g. "collector" gives "collector.ca_file".
func ClientConfig(section, caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", section, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %s: no PEM certificate found", section, caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s.cert_file and %s.key_file: set both for mutual TLS, or neither", section, section)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file/key_file: %w", section, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Endpoint checks a collector URL and returns it with defaultPath when it
// has no path. It must be https, or plain http to a loopback host when
// allowInsecureLoopback is set, and carry no user info (the bearer token
// authenticates). section prefixes the key in errors ("collector.url").
func Endpoint(section, raw, defaultPath string, allowInsecureLoopback bool) (string, error) {
	key := section + ".url"
	if raw == "" {
		return "", fmt.Errorf("%s: empty: set the collector's https://host:port", key)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%s: %q has no host: want https://host:port", key, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowInsecureLoopback || !IsLoopback(u.Hostname()) {
			return "", fmt.Errorf("%s: %q: plain http is allowed only to a loopback host with allow_insecure_loopback: use https", key, raw)
		}
	default:
		return "", fmt.Errorf("%s: %q: scheme must be https", key, raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("%s: %q: no user info in the URL: the token authenticates", key, raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = defaultPath
	}
	return u.String(), nil
}

// Transport is the HTTP transport of a client that talks to one
// collector: proxies from the environment, HTTP/2 when offered, and
// timeout bounding the dial and the TLS handshake.
func Transport(tc *tls.Config, timeout time.Duration, idlePerHost int) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tc,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: idlePerHost,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: timeout,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
	}
}

// IsLoopback reports whether a URL host is this machine: plain HTTP is
// allowed only there.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

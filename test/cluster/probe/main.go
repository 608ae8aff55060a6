// Command probe is the workload of the cluster suite (test/cluster): in a pod, it asks
// the token server for a new token (pkg/client, from the client's mounted Secret, so
// every request reads the mounted files) and calls the example API with it, again and
// again, and serves what happened on GET /stats: requests, answers as expected,
// failures with their messages, the mounted volume's version (the ..data link the
// kubelet swaps) and, over HTTPS, the serial of the token server's certificate.
//
//	probe --secret-dir /etc/oauth-client --audience back-office --api-url http://example-api.shop.svc:8080/api/users
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// Stats is the probe's report on GET /stats.
type Stats struct {
	// Requests is the number of rounds (a token request, then an API call if any).
	Requests int `json:"requests"`
	// OK counts rounds that got a token and, with an API, the expected status.
	OK int `json:"ok"`
	// Failed counts the others; Failures holds the last 50 of them.
	Failed   int      `json:"failed"`
	Failures []string `json:"failures"`
	// Volume is the target of the secret volume's ..data link at the last round.
	Volume string `json:"volume"`
	// TokenURL is the mounted token_url at the last round.
	TokenURL string `json:"tokenURL"`
	// ExpiresIn is the lifetime in seconds of the last token.
	ExpiresIn int64 `json:"expiresIn"`
	// TLSSerial is the serial number of the last certificate the token server presented.
	TLSSerial string `json:"tlsSerial,omitempty"`
}

type probe struct {
	mu    sync.Mutex
	stats Stats
}

func (p *probe) record(volume, tokenURL string, expiresIn int64, failure string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	p.stats.Volume, p.stats.TokenURL = volume, tokenURL
	if expiresIn > 0 {
		p.stats.ExpiresIn = expiresIn
	}
	if failure == "" {
		p.stats.OK++
		return
	}
	p.stats.Failed++
	msg := time.Now().UTC().Format(time.RFC3339Nano) + " " + failure
	log.Print("failure: ", failure)
	p.stats.Failures = append(p.stats.Failures, msg)
	if len(p.stats.Failures) > 50 {
		p.stats.Failures = p.stats.Failures[1:]
	}
}

func (p *probe) setSerial(s string) {
	p.mu.Lock()
	p.stats.TLSSerial = s
	p.mu.Unlock()
}

func main() {
	dir := flag.String("secret-dir", "/etc/oauth-client", "where the client's Secret is mounted")
	audience := flag.String("audience", "back-office", "the API's audience")
	saToken := flag.String("sa-token-file", client.DefaultServiceAccountTokenFile, "the projected ServiceAccount token (ServiceAccountToken clients)")
	apiURL := flag.String("api-url", "", "the API to call with each token; empty: tokens only")
	expect := flag.Int("expect-status", http.StatusOK, "the API's expected answer")
	interval := flag.Duration("interval", 100*time.Millisecond, "pause between rounds")
	listen := flag.String("listen", ":8080", "address of /stats")
	caFile := flag.String("ca-file", "", "CA certificates for an HTTPS token server")
	inspect := flag.String("inspect", "", "instead: print the user, group and root mount of the process running this program (in a shared process namespace) as JSON, and exit")
	flag.Parse()
	if *inspect != "" {
		_ = json.NewEncoder(os.Stdout).Encode(inspectProcess(*inspect))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *audience, *saToken, *apiURL, *expect, *interval, *listen, *caFile); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir, audience, saToken, apiURL string, expect int, interval time.Duration, listen, caFile string) error {
	p := &probe{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.stats)
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { log.Print(srv.ListenAndServe()) }()
	defer func() { _ = srv.Close() }()

	// Token requests: a client like any workload's (keep-alive connections), trusting
	// caFile for HTTPS and noting the served certificate. Connections are not kept
	// over HTTPS, so each request shows the certificate served now.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("no certificate in " + caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				p.setSerial(cs.PeerCertificates[0].SerialNumber.String())
			}
			return nil
		}}
		tr.DisableKeepAlives = true
	}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	// A delta longer than any lifetime: every round requests a new token, so every round
	// reads the mounted files and exercises the token server.
	ts, err := waitForSource(ctx, dir, client.WithAudience(audience), client.WithServiceAccountTokenFile(saToken),
		client.WithExpiryDelta(1000*time.Hour), client.WithHTTPClient(hc))
	if err != nil {
		return err
	}
	apiClient := &http.Client{Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		volume, _ := os.Readlink(filepath.Join(dir, "..data"))
		tokenURL, _ := os.ReadFile(filepath.Join(dir, "token_url"))
		tok, err := ts.Token()
		switch {
		case err != nil:
			p.record(volume, string(tokenURL), 0, "token: "+err.Error())
		case apiURL == "":
			p.record(volume, string(tokenURL), int64(time.Until(tok.Expiry).Round(time.Second).Seconds()), "")
		default:
			status, err := call(ctx, apiClient, apiURL, tok.AccessToken)
			failure := ""
			if err != nil {
				failure = "api: " + err.Error()
			} else if status != expect {
				failure = fmt.Sprintf("api: %d, want %d", status, expect)
			}
			p.record(volume, string(tokenURL), int64(time.Until(tok.Expiry).Round(time.Second).Seconds()), failure)
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	return nil
}

// waitForSource makes the TokenSource, retrying while the mounted files are not usable yet.
func waitForSource(ctx context.Context, dir string, opts ...client.Option) (*client.TokenSource, error) {
	for {
		ts, err := client.New(ctx, dir, opts...)
		if err == nil {
			return ts, nil
		}
		log.Printf("waiting for usable credentials in %s: %v", dir, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func call(ctx context.Context, hc *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.api+json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") && resp.StatusCode == http.StatusUnauthorized {
		return resp.StatusCode, errors.New("401 without a Bearer challenge")
	}
	return resp.StatusCode, nil
}

// inspection is what --inspect prints.
type inspection struct {
	PID              int    `json:"pid"`
	UID              string `json:"uid"`
	GID              string `json:"gid"`
	RootReadOnly     bool   `json:"rootReadOnly"`
	RootMountOptions string `json:"rootMountOptions"`
	Error            string `json:"error,omitempty"`
}

// inspectProcess finds the process whose argv[0] is program and reads its real,
// effective, saved and filesystem user and group ids (/proc/<pid>/status) and the
// options of its root mount (/proc/<pid>/mountinfo), as the kernel sees them.
func inspectProcess(program string) inspection {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != program {
			continue
		}
		in := inspection{PID: pid}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			in.Error = err.Error()
			return in
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				in.UID = strings.Join(strings.Fields(v), " ")
			}
			if v, ok := strings.CutPrefix(line, "Gid:"); ok {
				in.GID = strings.Join(strings.Fields(v), " ")
			}
		}
		mounts, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err != nil {
			in.Error = err.Error()
			return in
		}
		for _, line := range strings.Split(string(mounts), "\n") {
			// id parent major:minor root mountpoint options ...
			f := strings.Fields(line)
			if len(f) > 5 && f[4] == "/" {
				in.RootMountOptions = f[5]
				in.RootReadOnly = strings.HasPrefix(f[5], "ro,") || f[5] == "ro"
			}
		}
		return in
	}
	return inspection{Error: "no process runs " + program}
}

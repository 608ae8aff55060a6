package devenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// SampleCredentials reads the sample client's client_secret from the Secret the
// operator wrote for it.
func (e *Env) SampleCredentials(ctx context.Context) (clientID, clientSecret string, err error) {
	s := &corev1.Secret{}
	if err := e.Client.Get(ctx, types.NamespacedName{Namespace: SampleNamespace, Name: SampleClient}, s); err != nil {
		return "", "", fmt.Errorf("read Secret %s/%s: %w", SampleNamespace, SampleClient, err)
	}
	secret := string(s.Data[oauthv1alpha1.SecretKeyClientSecret])
	if secret == "" {
		return "", "", fmt.Errorf("secret %s/%s has no client_secret", SampleNamespace, SampleClient)
	}
	return SampleClientID, secret, nil
}

// RequestToken runs the client-credentials grant at TokenURL with a JSON body and
// returns the access token.
func (e *Env) RequestToken(ctx context.Context, clientID, clientSecret string) (string, error) {
	return e.requestToken(ctx, e.TokenURL, clientID, clientSecret)
}

func (e *Env) requestToken(ctx context.Context, tokenURL, clientID, clientSecret string) (string, error) {
	body, _ := json.Marshal(map[string]string{
		"grant_type": "client_credentials", "client_id": clientID, "client_secret": clientSecret,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return doTokenRequest(e.HTTP, req)
}

// doTokenRequest sends a token request with c and returns the access token of a 200
// answer.
func doTokenRequest(c *http.Client, req *http.Request) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(data, &answer); err != nil || answer.AccessToken == "" {
		return "", fmt.Errorf("token request: no access_token in %q", data)
	}
	return answer.AccessToken, nil
}

// waitForToken polls until the sample client gets a token from replica i, a child
// dies, ctx ends or ReadyTimeout passes.
func (e *Env) waitForToken(ctx context.Context, i int) error {
	tokenURL := e.Replicas[i].TokenURL
	last := errors.New("no attempt yet")
	err := e.poll(ctx, func(ctx context.Context) bool {
		id, secret, err := e.SampleCredentials(ctx)
		if err == nil {
			_, err = e.requestToken(ctx, tokenURL, id, secret)
		}
		last = err
		return err == nil
	})
	if err != nil && !e.hasFailed() {
		e.mu.Lock()
		m := e.managers[i]
		e.mu.Unlock()
		err = fmt.Errorf("%w (last attempt: %v)\n%s", err, last, m.tail(20))
	}
	if err != nil {
		return fmt.Errorf("wait for a token for %s from %s: %w", SampleClientID, tokenURL, err)
	}
	return nil
}

// waitForAPI polls until the example API serves the sample client: GET APIURL with its
// token answers 200.
func (e *Env) waitForAPI(ctx context.Context, api *child) error {
	last := errors.New("no attempt yet")
	err := e.poll(ctx, func(ctx context.Context) bool {
		last = e.getAPI(ctx)
		return last == nil
	})
	if err != nil && !e.hasFailed() {
		err = fmt.Errorf("%w (last attempt: %v)\n%s", err, last, api.tail(20))
	}
	if err != nil {
		return fmt.Errorf("wait for the example API at %s: %w", e.APIURL, err)
	}
	return nil
}

func (e *Env) getAPI(ctx context.Context) error {
	id, secret, err := e.SampleCredentials(ctx)
	if err != nil {
		return err
	}
	token, err := e.RequestToken(ctx, id, secret)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.APIURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.api+json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: %s: %s", e.APIURL, resp.Status, bytes.TrimSpace(data))
	}
	return nil
}

// poll calls ready every 200ms until it returns true; it fails when a child exits
// unexpectedly, ctx ends or ReadyTimeout passes.
func (e *Env) poll(ctx context.Context, ready func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx) {
			return nil
		}
		select {
		case <-e.failed:
			return e.failErr
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready after %s", e.opts.ReadyTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// hasFailed reports whether a child exited unexpectedly.
func (e *Env) hasFailed() bool {
	select {
	case <-e.failed:
		return true
	default:
		return false
	}
}

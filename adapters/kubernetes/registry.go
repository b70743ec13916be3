package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The manifest types a registry may answer with; the digest of whichever
// it serves is what the nodes' container runtime pulls.
var manifestTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// manifestDigest asks a registry (the distribution API) for the digest a
// tag names: HEAD /v2/<repo>/manifests/<tag>, with a bearer token got
// from the registry's challenge when it asks for one. A registry on a
// loopback address is spoken to over plain HTTP, as container runtimes do.
func manifestDigest(ctx context.Context, domain, repo, tag, user, password string) (string, error) {
	host := domain
	if host == "docker.io" {
		host = "registry-1.docker.io"
	}
	scheme := "https"
	if h, _, err := net.SplitHostPort(host); err == nil && (h == "localhost" || net.ParseIP(h) != nil && net.ParseIP(h).IsLoopback()) || host == "localhost" {
		scheme = "http"
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", scheme, host, repo, tag)
	do := func(auth string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", strings.Join(manifestTypes, ", "))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return http.DefaultClient.Do(req)
	}
	res, err := do("")
	if err != nil {
		return "", fmt.Errorf("registry %s: %w", host, err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusUnauthorized {
		auth, err := registryAuth(ctx, res.Header.Get("WWW-Authenticate"), user, password)
		if err != nil {
			return "", fmt.Errorf("registry %s: %w", host, err)
		}
		if res, err = do(auth); err != nil {
			return "", fmt.Errorf("registry %s: %w", host, err)
		}
		res.Body.Close()
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("registry %s: no tag %s in %s", host, tag, repo)
	case res.StatusCode != http.StatusOK:
		return "", fmt.Errorf("registry %s: %s for %s:%s", host, res.Status, repo, tag)
	}
	d := res.Header.Get("Docker-Content-Digest")
	if !strings.HasPrefix(d, "sha256:") {
		return "", fmt.Errorf("registry %s: no digest for %s:%s", host, repo, tag)
	}
	return d, nil
}

// registryAuth answers a registry's challenge: Basic with the
// credentials, or a bearer token from the realm it names.
func registryAuth(ctx context.Context, challenge, user, password string) (string, error) {
	scheme, params, _ := strings.Cut(challenge, " ")
	if strings.EqualFold(scheme, "basic") {
		if user == "" {
			return "", errors.New("the registry wants credentials (set the registry username and password)")
		}
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(user, password)
		return req.Header.Get("Authorization"), nil
	}
	if !strings.EqualFold(scheme, "bearer") {
		return "", fmt.Errorf("unknown authentication challenge %q", scheme)
	}
	p := map[string]string{}
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[k] = strings.Trim(v, `"`)
	}
	tu, err := url.Parse(p["realm"])
	if err != nil || p["realm"] == "" {
		return "", fmt.Errorf("no token realm in %q", challenge)
	}
	q := tu.Query()
	for _, k := range []string{"service", "scope"} {
		if p[k] != "" {
			q.Set(k, p[k])
		}
	}
	tu.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tu.String(), nil)
	if err != nil {
		return "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token: %s", res.Status)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&tok); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	return "Bearer " + tok.Token, nil
}

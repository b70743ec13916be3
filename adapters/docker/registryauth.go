package docker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
)

// registryAuth returns the X-Registry-Auth value for domain: the
// configured user and password, else the Docker config file's entry, else
// nothing (anonymous pull).
func (c *base) registryAuth(domain string) (string, error) {
	r := c.opts.Registry
	if r.Username != "" {
		return authconfig.Encode(registry.AuthConfig{Username: r.Username, Password: r.Password, ServerAddress: domain})
	}
	path := r.ConfigFile
	if path == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", nil
			}
			dir = filepath.Join(home, ".docker")
		}
		path = filepath.Join(dir, "config.json")
	}
	ac, err := authFromConfigFile(path, domain)
	if err != nil || ac == nil {
		return "", err
	}
	return authconfig.Encode(*ac)
}

// authFromConfigFile reads the "auths" entry for domain from a Docker
// config file. Credential helpers (credsStore, credHelpers) are not run:
// give the credentials in nocobot's configuration instead.
func authFromConfigFile(path, domain string) (*registry.AuthConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		// Not the file's content: it holds secrets.
		return nil, fmt.Errorf("%s is not valid JSON", path)
	}
	keys := []string{domain, "https://" + domain, "https://" + domain + "/v1/", "https://" + domain + "/v2/", "http://" + domain}
	if domain == "docker.io" {
		keys = append([]string{"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"}, keys...)
	}
	for _, k := range keys {
		e, ok := f.Auths[k]
		if !ok {
			continue
		}
		ac := &registry.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, ServerAddress: k}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: auth for %s is not base64", path, k)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%s: auth for %s is not user:password", path, k)
			}
			ac.Username, ac.Password = user, pass
		}
		return ac, nil
	}
	return nil, nil
}

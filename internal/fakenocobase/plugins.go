package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// plugins answers NocoBase's plugin manager (pm:list, pm:enable,
// pm:disable) when NOCOBASE_API_KEY is set: requests must carry it as a
// bearer token (401 EMPTY_TOKEN / INVALID_TOKEN otherwise, as NocoBase
// answers), and each action is appended to NOCOBASE_PLUGIN_LOG
// ("enable <name>"), which a test reads as what NocoBase did.
type plugins struct {
	key, log string
	mu       sync.Mutex
	enabled  map[string]bool
}

func newPlugins() *plugins {
	key := os.Getenv("NOCOBASE_API_KEY")
	if key == "" {
		return nil
	}
	return &plugins{key: key, log: os.Getenv("NOCOBASE_PLUGIN_LOG"), enabled: map[string]bool{}}
}

// serve handles r if it is a plugin manager request.
func (p *plugins) serve(w http.ResponseWriter, r *http.Request) bool {
	action, ok := strings.CutPrefix(r.URL.Path, "/api/pm:")
	if p == nil || !ok {
		return false
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	tok, has := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !has || tok == "":
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"message":"Unauthenticated. Please sign in to continue.","code":"EMPTY_TOKEN"}]}`))
		return true
	case tok != p.key:
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"message":"Invalid token","code":"INVALID_TOKEN"}]}`))
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch action {
	case "list":
		var data []map[string]any
		for name, on := range p.enabled {
			data = append(data, map[string]any{"name": name, "packageName": name, "enabled": on})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	case "enable", "disable":
		name := r.URL.Query().Get("filterByTk")
		if r.Method != http.MethodPost || name == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"errors":[{"message":"bad request"}]}`))
			return true
		}
		p.enabled[name] = action == "enable"
		if p.log != "" {
			if f, err := os.OpenFile(p.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(f, "%s %s\n", action, name)
				f.Close()
			}
		}
		_, _ = w.Write([]byte(`{"data":true}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"message":"Not Found"}]}`))
	}
	return true
}

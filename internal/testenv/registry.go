package testenv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Registry is an image registry of one test, on a free loopback port,
// holding what is pushed to it in memory. It speaks just enough of the
// registry protocol (API v2) for docker push and pull: blobs, chunked
// uploads, manifests by tag and digest. The engine trusts plain HTTP on
// 127.0.0.0/8 by default, so nothing needs configuring.
type Registry struct {
	// Host is "127.0.0.1:port", the first part of an image reference.
	Host string
	// Requests counts every request (so a test can tell that nothing
	// asked the registry).
	Requests atomic.Int64

	mu        sync.Mutex
	blobs     map[string][]byte
	manifests map[string]manifest // "name:ref" → manifest
	uploads   map[string][]byte
}

type manifest struct {
	ctype string
	body  []byte
}

// NewRegistry starts a registry that stops when the test ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{blobs: map[string][]byte{}, manifests: map[string]manifest{}, uploads: map[string][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Push tags image as r.Host/repo:tag on the engine at host, pushes it,
// removes that tag again (so the engine has the image only under its
// other names) and returns the manifest digest the registry gave it.
func (r *Registry) Push(t testing.TB, host, image, repo, tag string) string {
	t.Helper()
	ref := r.Host + "/" + repo + ":" + tag
	Docker(t, host, "tag", image, ref)
	Docker(t, host, "push", ref)
	Docker(t, host, "rmi", ref)
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.manifests[repo+":"+tag]
	if !ok {
		t.Fatalf("push of %s stored no manifest", ref)
	}
	return digestOf(m.body)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	r.Requests.Add(1)
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		return
	}
	p = strings.TrimPrefix(p, "/v2/")
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case strings.Contains(p, "/blobs/uploads/"):
		name, id, _ := strings.Cut(p, "/blobs/uploads/")
		r.upload(w, req, name, id)
	case strings.Contains(p, "/blobs/"):
		_, dg, _ := strings.Cut(p, "/blobs/")
		b, ok := r.blobs[dg]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Header().Set("Content-Type", "application/octet-stream")
		if req.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	case strings.Contains(p, "/manifests/"):
		name, ref, _ := strings.Cut(p, "/manifests/")
		if req.Method == http.MethodPut {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m := manifest{ctype: req.Header.Get("Content-Type"), body: body}
			dg := digestOf(body)
			r.manifests[name+":"+ref], r.manifests[name+":"+dg] = m, m
			w.Header().Set("Docker-Content-Digest", dg)
			w.Header().Set("Location", "/v2/"+name+"/manifests/"+dg)
			w.WriteHeader(http.StatusCreated)
			return
		}
		m, ok := r.manifests[name+":"+ref]
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Docker-Content-Digest", digestOf(m.body))
		w.Header().Set("Content-Type", m.ctype)
		w.Header().Set("Content-Length", fmt.Sprint(len(m.body)))
		if req.Method != http.MethodHead {
			_, _ = w.Write(m.body)
		}
	default:
		http.NotFound(w, req)
	}
}

// upload handles POST (start), PATCH (a chunk) and PUT (the end, with the
// digest) of a blob upload.
func (r *Registry) upload(w http.ResponseWriter, req *http.Request, name, id string) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch req.Method {
	case http.MethodPost:
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
		r.uploads[id] = body
	case http.MethodPatch:
		r.uploads[id] = append(r.uploads[id], body...)
	case http.MethodPut:
		data := append(r.uploads[id], body...)
		delete(r.uploads, id)
		dg := req.URL.Query().Get("digest")
		if digestOf(data) != dg {
			http.Error(w, `{"errors":[{"code":"DIGEST_INVALID"}]}`, http.StatusBadRequest)
			return
		}
		r.blobs[dg] = data
		w.Header().Set("Docker-Content-Digest", dg)
		w.Header().Set("Location", "/v2/"+name+"/blobs/"+dg)
		w.WriteHeader(http.StatusCreated)
		return
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(len(r.uploads[id])-1, 0)))
	w.WriteHeader(http.StatusAccepted)
}

// Tag points repo:tag at the manifest digest, as a registry does when
// someone pushes another build under a floating tag.
func (r *Registry) Tag(t testing.TB, repo, tag, digest string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.manifests[repo+":"+digest]
	if !ok {
		t.Fatalf("registry has no manifest %s in %s", digest, repo)
	}
	r.manifests[repo+":"+tag] = m
}

// RemoveImages untags refs on the engine at host; errors are ignored (it
// is for clean-ups).
func RemoveImages(host string, refs ...string) {
	_, _ = docker(host, nil, append([]string{"rmi"}, refs...)...)
}

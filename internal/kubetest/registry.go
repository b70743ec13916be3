package kubetest

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Registry is a stand-in image registry on loopback: it answers the
// distribution API's manifest requests (HEAD and GET
// /v2/<repo>/manifests/<tag or digest>) with a digest for each image a
// test adds, which is what nocobot asks to pin an image. The kubelet
// looks images up here to know what to run.
type Registry struct {
	Host   string // 127.0.0.1:port
	srv    *http.Server
	mu     sync.Mutex
	tags   map[string]string // repo:tag → digest
	images map[string]image  // digest → image
}

const (
	kindNocoBase    = "nocobase"
	kindMaintenance = "maintenance"
)

type image struct {
	kind, version, repoRef, digest string
}

func newRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), tags: map[string]string{}, images: map[string]image{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *Registry) close() { _ = r.srv.Close() }

// NocoBase adds a NocoBase image of version under repo:tag and returns
// its reference; the same version added twice under another repo or tag
// gets another digest (another build).
func (r *Registry) NocoBase(repo, tag, version string) string {
	return r.add(repo, tag, image{kind: kindNocoBase, version: version})
}

// Maintenance adds the maintenance page's image.
func (r *Registry) Maintenance(repo, tag string) string {
	return r.add(repo, tag, image{kind: kindMaintenance})
}

func (r *Registry) add(repo, tag string, img image) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	img.repoRef = r.Host + "/" + repo
	img.digest = fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(img.repoRef+":"+tag+"|"+img.kind+"|"+img.version)))
	r.tags[repo+":"+tag] = img.digest
	r.images[img.digest] = img
	return img.repoRef + ":" + tag
}

// Digest is the digest ref names now ("" if none).
func (r *Registry) Digest(ref string) string {
	img, ok := r.lookup(ref)
	if !ok {
		return ""
	}
	return img.digest
}

// lookup finds the image a reference names: host/repo:tag,
// host/repo@digest or host/repo:tag@digest.
func (r *Registry) lookup(ref string) (image, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rest, ok := strings.CutPrefix(ref, r.Host+"/")
	if !ok {
		return image{}, false
	}
	if i := strings.Index(rest, "@"); i >= 0 {
		img, ok := r.images[rest[i+1:]]
		return img, ok && strings.HasPrefix(ref, img.repoRef)
	}
	if !strings.Contains(rest, ":") {
		rest += ":latest"
	}
	d, ok := r.tags[rest]
	if !ok {
		return image{}, false
	}
	return r.images[d], true
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	path := strings.TrimPrefix(req.URL.Path, "/v2/")
	repo, ref, ok := strings.Cut(path, "/manifests/")
	if !ok || (req.Method != http.MethodHead && req.Method != http.MethodGet) {
		http.NotFound(w, req)
		return
	}
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	img, found := r.lookup(r.Host + "/" + repo + sep + ref)
	if !found {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Docker-Content-Digest", img.digest)
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if req.Method == http.MethodGet {
		_, _ = w.Write([]byte(`{"schemaVersion":2}`))
	}
}

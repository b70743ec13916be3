package docker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
)

type netEndpoint = network.EndpointSettings

func endpoint(ip string) *network.EndpointSettings {
	ep := &network.EndpointSettings{}
	if ip != "" {
		ep.IPAddress = netip.MustParseAddr(ip)
	}
	return ep
}

func progressOf(cur, total int64) *jsonstream.Progress {
	if cur == 0 && total == 0 {
		return nil
	}
	return &jsonstream.Progress{Current: cur, Total: total}
}

// recordedInspect is docker inspect of a compose-made NocoBase node on an
// engine with API 1.41 (trimmed): on two networks, with an anonymous
// volume, the image's defaults merged into its config.
const inspectJSON = `{
 "Id": "5d2a8c3b9e1f00112233445566778899aabbccddeeff00112233445566778899",
 "Name": "/prod-app-1",
 "Image": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
 "State": {"Status": "exited", "Running": false, "ExitCode": 0},
 "HostConfig": {"Binds": ["/srv/nocobase/storage:/app/nocobase/storage:rw"], "NetworkMode": "prod_default",
   "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}},
 "Mounts": [
  {"Type": "bind", "Source": "/srv/nocobase/storage", "Destination": "/app/nocobase/storage", "Mode": "rw", "RW": true, "Propagation": "rprivate"},
  {"Type": "volume", "Name": "3f0c1e5d8a", "Source": "/var/lib/docker/volumes/3f0c1e5d8a/_data", "Destination": "/data", "Driver": "local", "Mode": "", "RW": true}
 ],
 "Config": {
  "Hostname": "5d2a8c3b9e1f", "Env": ["APP_KEY=k", "DB_HOST=postgres", "PATH=/usr/local/bin:/usr/bin", "NODE_VERSION=20"],
  "Cmd": ["yarn", "start"], "Image": "nocobase/nocobase:1.7.14", "Volumes": {"/data": {}}, "WorkingDir": "/app",
  "Entrypoint": ["/app/docker-entrypoint.sh"],
  "Labels": {"com.docker.compose.project": "prod", "com.docker.compose.service": "app", "org.opencontainers.image.version": "1.7.14"}
 },
 "NetworkSettings": {"Networks": {
  "prod_default": {"Aliases": ["prod-app-1", "app", "5d2a8c3b9e1f"], "NetworkID": "n1", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""},
  "prod_backend": {"Aliases": ["nocobase", "5d2a8c3b9e1f"], "NetworkID": "n2", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""}
 }}
}`

const imageConfigJSON = `{"Env": ["PATH=/usr/local/bin:/usr/bin", "NODE_VERSION=20"], "Cmd": ["yarn", "start"],
 "Entrypoint": ["/app/docker-entrypoint.sh"], "WorkingDir": "/app", "Volumes": {"/data": {}},
 "Labels": {"org.opencontainers.image.version": "1.7.14"}}`

func recordedInspect(t *testing.T) container.InspectResponse {
	var ci container.InspectResponse
	if err := json.Unmarshal([]byte(inspectJSON), &ci); err != nil {
		t.Fatal(err)
	}
	return ci
}

func recordedImageConfig(t *testing.T) *dockerspec.DockerOCIImageConfig {
	var c dockerspec.DockerOCIImageConfig
	if err := json.Unmarshal([]byte(imageConfigJSON), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// tlsEngine serves a sliver of the Engine API (API 1.41) over TLS that
// requires a client certificate, and writes ca.pem, cert.pem and key.pem
// for a client into a folder.
func tlsEngine(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, server bool) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	writePEM := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePEM("ca.pem", "CERTIFICATE", caDER)
	clientDER, clientKey := issue(2, false)
	writePEM("cert.pem", "CERTIFICATE", clientDER)
	kb, _ := x509.MarshalECPrivateKey(clientKey)
	writePEM("key.pem", "EC PRIVATE KEY", kb)
	serverDER, serverKey := issue(3, true)

	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/v1.41/containers/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	})
	srv := httptest.NewUnstartedServer(mux)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	return srv, dir
}

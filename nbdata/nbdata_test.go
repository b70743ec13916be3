package nbdata

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestScryptRFC7914(t *testing.T) {
	for _, c := range []struct {
		pw, salt string
		n, r, p  int
		want     string
	}{
		{"", "", 16, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
		{"password", "NaCl", 1024, 8, 16, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
	} {
		got, err := scryptKey([]byte(c.pw), []byte(c.salt), c.n, c.r, c.p, 64)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != c.want {
			t.Errorf("scrypt(%q,%q) = %x", c.pw, c.salt, got)
		}
	}
}

// source writes a small dump file and a storage tar holding an upload,
// the app's key and a file that must stay out (logs).
func source(t *testing.T) Source {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("PGDMP fake dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{"uploads/a.png": "png", "apps/main/aes_key.dat": "0123456789abcdef0123456789abcdef", "logs/x.log": "no"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	return Source{
		Metadata: Metadata{Version: "2.2.15", Database: Database{Dialect: "postgres", Schema: "", TablePrefix: ""}},
		DataFile: data, Storage: &buf,
	}
}

var app = Target{Version: "2.2.15", Dialect: "postgres"}

func write(t *testing.T, src Source, password string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "b"+Extension)
	if err := Write(context.Background(), file, src, password); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestGoodFile(t *testing.T) {
	file := write(t, source(t), "")
	s, err := Inspect(context.Background(), file, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Encrypted || s.DataDir || s.Uploads != 1 || !s.AESKey || s.DataBytes != int64(len("PGDMP fake dump")) {
		t.Fatalf("summary %+v", s)
	}
	if err := s.Metadata.Check(app); err != nil {
		t.Fatal(err)
	}
	if s.Metadata.MetadataVersion != MetadataVersion || s.Metadata.Plugins == nil {
		t.Fatalf("metadata %+v", s.Metadata)
	}
}

func TestDamagedZip(t *testing.T) {
	file := write(t, source(t), "")
	b, _ := os.ReadFile(file)
	for name, bad := range map[string][]byte{
		"truncated":    b[:len(b)/2],
		"flipped byte": flip(b, strings.Index(string(b), "PGDMP")),
		"not a zip":    []byte("hello"),
	} {
		f := filepath.Join(t.TempDir(), "x.nbdata")
		os.WriteFile(f, bad, 0o600)
		_, err := Inspect(context.Background(), f, "", "")
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: more than one line: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

func TestRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		meta func(*Metadata)
		want string
	}{
		"newer version": {func(m *Metadata) { m.Version = "2.3.0-beta.1" }, "newer than the app's 2.2.15"},
		"other dialect": {func(m *Metadata) { m.Database.Dialect = "mysql" }, "mysql database, the app runs on postgres"},
		"prefix":        {func(m *Metadata) { m.Database.TablePrefix = "nb_" }, "table prefix"},
		"schema":        {func(m *Metadata) { m.Database.Schema = "tenant1" }, "schema"},
		"underscored":   {func(m *Metadata) { m.Database.Underscored = true }, "DB_UNDERSCORED"},
	} {
		src := source(t)
		c.meta(&src.Metadata)
		s, err := Inspect(context.Background(), write(t, src, ""), "", "")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Metadata.Check(app)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An older backup and a pre-release of the same version are accepted,
	// as NocoBase compares the x.y.z only.
	for _, v := range []string{"2.1.41", "2.2.15-beta.3", "1.9.0"} {
		if err := (Metadata{Version: v, Database: Database{Dialect: "postgres"}}).Check(app); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

func TestEncrypted(t *testing.T) {
	file := write(t, source(t), "s3cret")
	if _, err := Inspect(context.Background(), file, "", ""); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("no password: %v", err)
	}
	if _, err := Inspect(context.Background(), file, "wrong", ""); !errors.Is(err, ErrPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	tmp := t.TempDir()
	s, err := Inspect(context.Background(), file, "s3cret", tmp)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Encrypted || s.Uploads != 1 {
		t.Fatalf("%+v", s)
	}
	s.Close()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("decrypted copy left behind: %v", left)
	}
}

// TestNodeCompatible encrypts with Node's crypto as the Backup manager
// does and decrypts here, and the other way round.
func TestNodeCompatible(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	plain := write(t, source(t), "")
	enc := filepath.Join(t.TempDir(), "enc.nbdata")
	script := `const crypto=require('crypto'),fs=require('fs');const [,op,inp,out,pw]=process.argv;
const key=crypto.scryptSync(pw,'backup salt',32);const b=fs.readFileSync(inp);
if(op==='enc'){const iv=crypto.randomBytes(16);const c=crypto.createCipheriv('aes-256-cbc',key,iv);fs.writeFileSync(out,Buffer.concat([iv,c.update(b),c.final()]));}
else{const d=crypto.createDecipheriv('aes-256-cbc',key,b.subarray(0,16));fs.writeFileSync(out,Buffer.concat([d.update(b.subarray(16)),d.final()]));}`
	if out, err := exec.Command(node, "-e", script, "enc", plain, enc, "pa ss").CombinedOutput(); err != nil {
		t.Fatalf("node: %v %s", err, out)
	}
	s, err := Inspect(context.Background(), enc, "pa ss", "")
	if err != nil {
		t.Fatalf("Node's encryption: %v", err)
	}
	s.Close()
	mine := write(t, source(t), "pa ss")
	dec := filepath.Join(t.TempDir(), "dec.zip")
	if out, err := exec.Command(node, "-e", script, "dec", mine, dec, "pa ss").CombinedOutput(); err != nil {
		t.Fatalf("Node decrypting ours: %v %s", err, out)
	}
	if s, err = Inspect(context.Background(), dec, "", ""); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

package nbdata

import (
	"encoding/json"
	"os"
)

// WriteSidecar writes m beside file (readable without the password).
func WriteSidecar(file string, m Metadata) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := SidecarPath(file) + ".part"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, SidecarPath(file))
}

// ReadSidecar reads the metadata beside file.
func ReadSidecar(file string) (Metadata, error) {
	var m Metadata
	b, err := os.ReadFile(SidecarPath(file))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

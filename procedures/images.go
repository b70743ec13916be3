package procedures

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// imageRepo is an image reference without its tag or digest.
func imageRepo(image string) string {
	// Strip a digest, then a tag (a colon after the last slash).
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// imageTag is an image reference's tag, "latest" when it names none.
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}

// currentVersion asks a running node, else reads the image tag.
func currentVersion(ctx context.Context, env *stepEnv, nodes []ports.Node) string {
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		c, cancel := context.WithTimeout(ctx, 15*time.Second)
		v, err := env.c.App.Version(c, n)
		cancel()
		if err == nil && v != "" {
			return v
		}
	}
	return strings.TrimSuffix(imageTag(nodes[0].Image), env.c.TagSuffix)
}

// versionCoreRE is the part of a tag that NocoBase reports as its
// version: 1.7.14 or 2.0.0-beta.12; what follows (-full, -b) is
// packaging (docs/nocobase.md).
var versionCoreRE = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)(\.[0-9]+)?)?)(-.*)?$`)

// versionPart is the NocoBase version a tag names, "" for a floating or
// custom tag.
func versionPart(tag string) string {
	m := versionCoreRE.FindStringSubmatch(tag)
	if m == nil {
		return ""
	}
	return m[1]
}

// newerVersion reports whether version a is known to be newer than b;
// unknown or unparsable versions are never newer.
func newerVersion(a, b string) bool {
	pa, oka := parseVersion(a)
	pb, okb := parseVersion(b)
	if !oka || !okb {
		return false
	}
	for i := range 3 {
		if pa.num[i] != pb.num[i] {
			return pa.num[i] > pb.num[i]
		}
	}
	// 2.0.0 is newer than 2.0.0-beta.12; pre-releases compare as text.
	switch {
	case pa.pre == pb.pre:
		return false
	case pa.pre == "":
		return true
	case pb.pre == "":
		return false
	}
	return comparePre(pa.pre, pb.pre) > 0
}

type version struct {
	num [3]int
	pre string
}

func parseVersion(s string) (version, bool) {
	core := versionPart(s)
	if core == "" {
		return version{}, false
	}
	core = strings.TrimPrefix(core, "v")
	main, pre, _ := strings.Cut(core, "-")
	var v version
	for i, p := range strings.SplitN(main, ".", 3) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return version{}, false
		}
		v.num[i] = n
	}
	v.pre = pre
	return v, true
}

// comparePre compares pre-release parts such as beta.12 and beta.9,
// numbers as numbers.
func comparePre(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			if na != nb {
				return na - nb
			}
			continue
		}
		if c := strings.Compare(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// imageInfo describes an image present on the engine. Its Digest is in
// the form Node.Digest has: the registry digest, or the local id for an
// image that never came from a registry, so the two compare.
func imageInfo(ctx context.Context, c *Cluster, ref string) (ports.ImageInfo, error) {
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := c.Nodes.Resolve(ictx, ref)
	if err != nil {
		return ports.ImageInfo{}, err
	}
	if info.Digest == "" {
		info.Digest = info.ID
	}
	return info, nil
}

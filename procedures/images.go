package procedures

import (
	"context"
	"strings"
	"time"
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
func currentVersion(ctx context.Context, env *stepEnv, nodes []Node) string {
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

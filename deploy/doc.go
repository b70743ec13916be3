// Package deploy holds no code: it is the folder of deployment files
// (compose.yaml, the nginx configuration, example configurations), and its
// tests check that these files agree with each other and with the tools
// that read them.
package deploy

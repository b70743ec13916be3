package slack

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/slack-go/slack"
)

// slackError is Slack's error code of a failed call ("not_in_channel"),
// or the error's text when Slack gave none.
func slackError(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if s := err.Error(); !strings.ContainsAny(s, " :") {
		return s // slack-go returns some codes as bare errors
	}
	return err.Error()
}

// channelRefuses: the channel will not take the bot's messages until
// someone acts (invites the bot, unarchives the channel).
func channelRefuses(code string) bool {
	switch code {
	case "not_in_channel", "channel_not_found", "is_archived", "restricted_action",
		"restricted_action_read_only_channel", "restricted_action_thread_only_channel",
		"restricted_action_non_threadable_channel", "team_access_not_granted", "ekm_access_denied":
		return true
	}
	return false
}

// messageRefused: Slack will not take this message as it is.
func messageRefused(code string) bool {
	switch code {
	case "invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_attachments",
		"invalid_attachments", "no_text", "msg_blocks_too_long", "invalid_arguments":
		return true
	}
	return false
}

// authFails: a token Slack refuses; retrying will not help.
func authFails(code string) bool {
	switch code {
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
		"no_permission", "not_allowed_token_type", "missing_scope", "invalid_token":
		return true
	}
	return false
}

// certificateError: the TLS peer cannot be trusted; retrying will not help.
func certificateError(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &cv)
}

// plainMessage is a message in its plainest form: its text in one
// section, and its buttons with nothing but their label and value.
func plainMessage(text string, blocks []slack.Block) message {
	out := []slack.Block{section(text)}
	for _, b := range blocks {
		a, ok := b.(*slack.ActionBlock)
		if !ok {
			continue
		}
		var els []slack.BlockElement
		for _, e := range a.Elements.ElementSet {
			if btn, ok := e.(*slack.ButtonBlockElement); ok {
				els = append(els, slack.NewButtonBlockElement(btn.ActionID, btn.Value, btn.Text))
			}
		}
		if len(els) > 0 {
			out = append(out, slack.NewActionBlock(a.BlockID, els...))
		}
	}
	return message{text: text, blocks: out}
}

package procedures

// Typed text: a command line cut into words, and how a message quotes
// what someone typed.

import (
	"errors"
	"strings"
	"unicode"
)

// SplitWords cuts a command line into words; "double" or 'single' quotes
// keep spaces. Chat clients turn quotes into curly ones, which count too.
func SplitWords(text string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var closing rune
	for _, r := range text {
		switch {
		case closing != 0:
			if r == closing || (closing == '"' && r == '”') {
				closing = 0
				continue
			}
			cur.WriteRune(r)
		case r == '"' || r == '“' || r == '”':
			closing, inWord = '"', true
			if r == '“' {
				closing = '”'
			}
		case r == '\'' || r == '‘':
			closing, inWord = '\'', true
			if r == '‘' {
				closing = '’'
			}
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if closing != 0 {
		return nil, errors.New("a quote is not closed")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// typedMax is how much of one piece of typed text a message quotes.
const typedMax = 40

// Typed is typed text as a message quotes it: at most a short prefix, so
// a long command gets a short answer.
func Typed(s string) string {
	if n := []rune(s); len(n) > typedMax {
		return string(n[:typedMax]) + "…"
	}
	return s
}

// TypedQ is Typed in double quotes.
func TypedQ(s string) string { return `"` + Typed(s) + `"` }

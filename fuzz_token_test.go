package lease

// Fuzz target for token.go: ParseToken reads what the user hands the
// library, and Compare orders what it parsed. As every fuzz target of this
// package (fuzz_*_test.go), it asserts properties of the result, not only
// the absence of panics. Seed corpora are both added here with f.Add and
// committed under testdata/fuzz/<FuzzName>/.
//
// Run it with:
//
//	go test -run '^$' -fuzz '^FuzzParseToken$' -fuzztime 60s -parallel 2 .

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

// fuzzTokenSeeds are pairs of tokens, canonical or not.
var fuzzTokenSeeds = [][2]string{
	{"184467/3", "184468/3"},
	{"1/0", "1/0"},
	{"1/2147483647", "2/0"},
	{"99999999999999999999999999999999/7", "100000000000000000000000000000000/0"},
	{"0/1", "1/1"},
	{"01/1", "1/01"},
	{"1/-1", "1/+1"},
	{"1/2147483648", "1/-0"},
	{"", "/"},
	{"abc/1", "1/1/1"},
	{"\u0661/1", "1/\u0661"},
	{" 1/1", "1/1 "},
}

func FuzzParseToken(f *testing.F) {
	for _, s := range fuzzTokenSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ParseToken(%q): error %v does not match ErrInvalidToken", s, err)
			}
			if !strings.HasPrefix(err.Error(), "lease: ") {
				t.Fatalf("ParseToken(%q): error %q does not start with %q", s, err, "lease: ")
			}
			if !tok.IsZero() {
				t.Fatalf("ParseToken(%q) returned %+v with error %v", s, tok, err)
			}
			return
		}
		if got := tok.String(); got != s {
			t.Fatalf("ParseToken(%q).String() = %q", s, got)
		}
		if tok.Transitions < 0 || tok.IsZero() {
			t.Fatalf("ParseToken(%q) = %+v", s, tok)
		}
		if again, err := ParseToken(tok.String()); err != nil || again != tok {
			t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", tok.String(), again, err, tok)
		}
		if c, err := tok.Compare(tok); c != 0 || err != nil {
			t.Fatalf("%v.Compare(itself) = %d, %v; want 0, nil", tok, c, err)
		}
		rv, ok := new(big.Int).SetString(tok.ResourceVersion, 10)
		if !ok || rv.Sign() <= 0 {
			t.Fatalf("ParseToken(%q) accepted resourceVersion %q", s, tok.ResourceVersion)
		}
		if _, err := tok.Compare(Token{ResourceVersion: "0" + tok.ResourceVersion}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("comparing with a non-canonical resourceVersion: got %v, want ErrInvalidToken", err)
		}

		// Compare orders by the integer value, antisymmetrically.
		u, err := ParseToken(other)
		if err != nil {
			if _, cerr := tok.Compare(Token{ResourceVersion: other}); cerr == nil && !fuzzCanonicalRV(other) {
				t.Fatalf("Compare accepted resourceVersion %q", other)
			}
			return
		}
		c1, err1 := tok.Compare(u)
		c2, err2 := u.Compare(tok)
		if err1 != nil || err2 != nil {
			t.Fatalf("comparing %v and %v: %v, %v", tok, u, err1, err2)
		}
		urv, _ := new(big.Int).SetString(u.ResourceVersion, 10)
		if want := rv.Cmp(urv); c1 != want || c2 != -want {
			t.Fatalf("%v.Compare(%v) = %d and back %d; want %d and %d", tok, u, c1, c2, want, -want)
		}
	})
}

// fuzzCanonicalRV reports whether s is a canonical positive integer.
func fuzzCanonicalRV(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

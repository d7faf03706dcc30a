package lease

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenStringAndParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Token
		wantErr string
	}{
		{in: "123/4", want: Token{"123", 4}},
		{in: "1/0", want: Token{"1", 0}},
		{in: "99999999999999999999/2147483647", want: Token{"99999999999999999999", 2147483647}},
		{in: "", wantErr: "want <resourceVersion>/<transitions>"},
		{in: "123", wantErr: "want <resourceVersion>/<transitions>"},
		{in: "0123/1", wantErr: `resourceVersion "0123" is not a canonical integer`},
		{in: "0/1", wantErr: `resourceVersion "0" is not a canonical integer`},
		{in: "abc/1", wantErr: `resourceVersion "abc"`},
		{in: "/1", wantErr: `resourceVersion ""`},
		{in: "12/-1", wantErr: `transitions "-1"`},
		{in: "12/01", wantErr: `transitions "01"`},
		{in: "12/2147483648", wantErr: `transitions "2147483648"`},
		{in: "12/1/3", wantErr: `transitions "1/3"`},
		{in: "12/+1", wantErr: `transitions "+1"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalidToken)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.in, got.String(), "round trip")
		})
	}
}

func TestTokenCompare(t *testing.T) {
	tests := []struct {
		a, b    Token
		want    int
		wantErr bool
	}{
		{a: Token{"9", 1}, b: Token{"10", 0}, want: -1},
		{a: Token{"10", 0}, b: Token{"9", 5}, want: 1},
		{a: Token{"42", 3}, b: Token{"42", 3}, want: 0},
		{a: Token{"100000000000000000000", 0}, b: Token{"99999999999999999999", 0}, want: 1},
		{a: Token{"abc", 0}, b: Token{"1", 0}, wantErr: true},
		{a: Token{"1", 0}, b: Token{"", 0}, wantErr: true},
		{a: Token{"01", 0}, b: Token{"1", 0}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.a.String()+" vs "+tc.b.String(), func(t *testing.T) {
			got, err := tc.a.Compare(tc.b)
			if tc.wantErr {
				require.ErrorIs(t, err, ErrInvalidToken)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

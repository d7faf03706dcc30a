package lease_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadLeaseShowsHolderToken: the holder publishes its tenure's token at
// its first renewal; a new tenure's acquiring write drops the old one.
func TestReadLeaseShowsHolderToken(t *testing.T) {
	e := newEnv(t)
	cfg := e.srv.Config()
	info, err := lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	assert.False(t, info.Exists)
	assert.Equal(t, "default", info.Namespace)

	a := e.newLease("pod-a")
	tok := a.acquire(t)
	info, err = lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	assert.True(t, info.Exists)
	assert.Equal(t, "pod-a", info.Holder)
	assert.Equal(t, lease.Token{}, info.HolderToken, "not published before the first renewal")
	assert.NotEmpty(t, info.UID)
	assert.Zero(t, info.ExpiresIn, "renewTime on the fake clock's date, a week ago: expired by rule (b) for a reader on the real clock")

	a.renewOnce(t)
	info, err = lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	assert.Equal(t, tok, info.HolderToken)
	assert.NotEqual(t, tok.ResourceVersion, info.ResourceVersion, "the record moved on; the token did not")

	// A takeover by another (here after a third party cleared the holder).
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }))
	b := e.newLease("pod-b")
	tokB := b.acquire(t)
	assert.NotContains(t, e.record().Annotations, lease.TokenAnnotation)
	b.renewOnce(t)
	info, err = lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	assert.Equal(t, tokB, info.HolderToken)
	assert.Equal(t, int32(1), info.HolderToken.Transitions)
}

func TestListLeases(t *testing.T) {
	e := newEnv(t)
	cfg := e.srv.Config()
	for _, name := range []string{"c", "a", "b"} {
		l := e.realLease("pod-"+name, func(s *lease.Settings) {
			s.Name = name
			s.Labels = map[string]string{"team": map[string]string{"a": "x", "b": "x", "c": "y"}[name]}
		})
		ok, err := l.Acquire(e.ctx())
		require.NoError(t, err)
		require.True(t, ok)
	}
	all, err := lease.ListLeases(e.ctx(), cfg, "", "")
	require.NoError(t, err)
	require.Len(t, all, 3)
	assert.Equal(t, []string{"a", "b", "c"}, []string{all[0].Name, all[1].Name, all[2].Name}, "sorted by name")
	assert.Equal(t, "pod-a", all[0].Holder)
	assert.Equal(t, map[string]string{"team": "x"}, all[0].Labels)
	assert.Positive(t, all[0].ExpiresIn)
	assert.LessOrEqual(t, all[0].ExpiresIn, 15*time.Second, "a fresh reader gives the record its duration at most")

	x, err := lease.ListLeases(e.ctx(), cfg, "default", "team=x")
	require.NoError(t, err)
	assert.Len(t, x, 2)

	_, err = lease.ListLeases(e.ctx(), cfg, "", "team in (")
	require.ErrorIs(t, err, lease.ErrInvalidSettings)
	assert.Contains(t, err.Error(), `labelSelector "team in ("`)

	e.srv.InjectFault(leasetest.Fault{Verb: "list", Status: http.StatusForbidden})
	_, err = lease.ListLeases(e.ctx(), cfg, "", "")
	var ae *lease.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusForbidden, ae.StatusCode)
}

// TestForceRelease deletes only the record that was read.
func TestForceRelease(t *testing.T) {
	e := newEnv(t)
	cfg := e.srv.Config()
	a := e.newLease("pod-a", func(s *lease.Settings) { s.WatchWhileHolding = true })
	a.acquire(t)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	info, err := lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	a.renewOnce(t) // the record moves on after it was read

	err = lease.ForceRelease(e.ctx(), cfg, info)
	var ae *lease.APIError
	require.ErrorAs(t, err, &ae, "a record renewed since it was read is not deleted")
	assert.Equal(t, http.StatusConflict, ae.StatusCode)
	assert.True(t, a.CheckAlive())

	info, err = lease.ReadLease(e.ctx(), cfg, "", "job")
	require.NoError(t, err)
	require.NoError(t, lease.ForceRelease(e.ctx(), cfg, info))
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeleted, le.Reason)
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok)
	require.NoError(t, lease.ForceRelease(e.ctx(), cfg, info), "already gone: not an error")

	err = lease.ForceRelease(e.ctx(), cfg, lease.LeaseInfo{Namespace: "default", Name: "job"})
	require.ErrorIs(t, err, lease.ErrInvalidSettings)
	assert.Contains(t, err.Error(), "no UID or ResourceVersion")
}

// TestReadLeaseHidesAForeignHoldersStaleToken: client-go keeps annotations
// when it takes a Lease over, so the token of the kubelease tenure before
// it stays; it is not the new holder's.
func TestReadLeaseHidesAForeignHoldersStaleToken(t *testing.T) {
	e := newEnv(t)
	e.putRecord("cg-1", time.Now(), 15, 4)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Annotations = map[string]string{lease.NonceAnnotation: "n0nce", lease.TokenAnnotation: "17/3"}
	}))
	info, err := lease.ReadLease(e.ctx(), e.srv.Config(), "", "job")
	require.NoError(t, err)
	assert.Equal(t, lease.Token{}, info.HolderToken, "transitions 4, the token's 3: an earlier tenure's")
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		delete(l.Annotations, lease.NonceAnnotation)
		l.Annotations[lease.TokenAnnotation] = "17/4"
	}))
	info, err = lease.ReadLease(e.ctx(), e.srv.Config(), "", "job")
	require.NoError(t, err)
	assert.Equal(t, lease.Token{}, info.HolderToken, "no nonce: the holder is not a kubelease")
}

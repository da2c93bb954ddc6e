# LemonLDAP::NG's command line, lemonldap-ng-sessions (Debian's
# liblemonldap-ng-common-perl), against a minimal LL::NG configuration that
# names our class: search, search --select (broken with Debian 12's
# pure-Perl PgJSON 1.3.11), search --where, search --id-only, get, delete.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use LLNGConf;
use JSON::PP;

my $CLI = '/usr/share/lemonldap-ng/bin/lemonldap-ng-sessions';
unless ( -x $CLI or -f $CLI ) {
    my $why = "needs $CLI (Debian: liblemonldap-ng-common-perl)";
    if ( PgServer::required() ) { plan tests => 1; fail("required here: $why"); exit 1 }
    plan skip_all => $why;
}
my $pg = PgServer->start_or_skip;
my %env = LLNGConf::write($pg);
local @ENV{ keys %env } = values %env;

require Lemonldap::NG::Common::Session;
my %ids;
for my $u (qw(dwho rtyler msmith)) {
    my $s = Lemonldap::NG::Common::Session->new( { storageModule => 'Apache::Session::Browseable::Patroni',
        storageModuleOptions => { $pg->options }, kind => 'SSO',
        info => { uid => $u, _whatToTrace => $u, _utime => 1700000000, mail => "$u\@badwolf.org" } } );
    die $s->error if $s->error;
    $ids{$u} = $s->id;
}

sub cli {
    my (@a) = @_;
    # the tool drops to www-data by default; stay root (it only reads here)
    my $out = `$^X $CLI -u root -g root @{[ map { quotemeta } @a ]} 2>&1`;
    return ( $? >> 8, $out );
}

my ( $rc, $out ) = cli('search');
is( $rc, 0, 'search: exit 0' ) or diag $out;
my $all = eval { decode_json($out) } || [];
is_deeply( [ sort map { $_->{_session_id} } @$all ], [ sort values %ids ], 'search: every session, whole' );
is( ( grep { $_->{uid} eq 'dwho' } @$all )[0]{mail}, 'dwho@badwolf.org', 'search: with its data' );

( $rc, $out ) = cli( 'search', '--select', 'uid', '--select', '_utime' );
is( $rc, 0, 'search --select: exit 0 (Debian 12\'s PgJSON fails here)' ) or diag $out;
my $sel = eval { decode_json($out) } || [];
is_deeply( [ sort map { $_->{uid} } @$sel ], [qw(dwho msmith rtyler)], 'search --select: the selected field' );
is( $sel->[0]{_utime}, '1700000000', 'search --select: a second field' );
ok( !exists $sel->[0]{mail}, 'search --select: only the selected fields' );

( $rc, $out ) = cli( 'search', '--where', 'uid=rtyler', '--select', 'mail' );
is( $rc, 0, 'search --where: exit 0' ) or diag $out;
my $w = eval { decode_json($out) } || [];
is( scalar @$w, 1, 'search --where: one session' );
is( $w->[0]{mail}, 'rtyler@badwolf.org', 'search --where: its selected field' );

( $rc, $out ) = cli( 'search', '--where', '_whatToTrace=msmith', '--id-only' );
is( $out, "$ids{msmith}\n", 'search --where --id-only: the id (asks for _session_id as a field)' );
( $rc, $out ) = cli( 'search', '--id-only' );
is_deeply( [ sort split /\n/, $out ], [ sort values %ids ], 'search --id-only: every id' );

( $rc, $out ) = cli( 'get', $ids{dwho} );
is( $rc, 0, 'get: exit 0' );
my $g = eval { decode_json($out) } || [];
is( $g->[0]{uid}, 'dwho', 'get: the session' );

( $rc, $out ) = cli( 'delete', $ids{dwho} );
is( $rc, 0, 'delete: exit 0' ) or diag $out;
is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$ids{dwho}'"), 0, 'delete: row gone' );
( $rc, $out ) = cli( 'delete', '--where', 'uid=rtyler' );
is( $rc, 0, 'delete --where: exit 0' ) or diag $out;
is( $pg->psql('SELECT count(*) FROM sessions'), 1, 'delete --where: only the matching session went' );

done_testing;

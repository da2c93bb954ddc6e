# LemonLDAP::NG's own session object (Lemonldap::NG::Common::Session, from
# Debian's liblemonldap-ng-common-perl) with our class as storage module:
# create, read, update (a key set to undef is deleted), remove, creation
# with a given id (force) -- as root, and as an unprivileged user with a
# local cache configured (LL::NG then wraps our store in its cache layer).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use PgServer;
use File::Temp qw(tempdir);
use POSIX ();

unless ( eval { require Lemonldap::NG::Common::Session; 1 } ) {
    my $why = 'needs Lemonldap::NG::Common::Session (Debian: liblemonldap-ng-common-perl)';
    if ( PgServer::required() ) { plan tests => 1; fail("required here: $why"); exit 1 }
    plan skip_all => $why;
}
my $pg = PgServer->start_or_skip;
my $CLASS = 'Apache::Session::Browseable::Patroni';

sub scenario {
    my (%cache) = @_;
    my %opts = ( $pg->options, Commit => 1 );
    my @common = ( storageModule => $CLASS, storageModuleOptions => \%opts, %cache );
    my @r;    # [ ok, name, diag ]
    my $t = sub { push @r, [ $_[0] ? 1 : 0, $_[1], $_[2] ] };

    # create
    my $s = Lemonldap::NG::Common::Session->new(
        { @common, kind => 'SSO', info => { uid => 'dwho', _utime => time, groups => 'timelords' } } );
    $t->( !$s->error && $s->id && $s->id =~ /^[0-9a-f]{64}$/, 'create: a session with a 64-hex id', $s->error );
    my $id = $s->id;
    $t->( $pg->psql("SELECT a_session->>'uid' FROM sessions WHERE id = '$id'") eq 'dwho',
        'create: row in the table' );
    $t->( $pg->psql("SELECT a_session->>'_session_kind' FROM sessions WHERE id = '$id'") eq 'SSO',
        'create: _session_kind set' );

    # read
    my $r = Lemonldap::NG::Common::Session->new( { @common, id => $id, kind => 'SSO' } );
    $t->( !$r->error && $r->data->{uid} eq 'dwho' && $r->data->{groups} eq 'timelords', 'read' , $r->error );

    # update, deleting a key by setting it to undef
    $t->( $r->update( { mail => 'dwho@badwolf.org', groups => undef } ), 'update returns true', $r->error );
    my $r2 = Lemonldap::NG::Common::Session->new( { @common, id => $id, kind => 'SSO' } );
    $t->( $r2->data->{mail} eq 'dwho@badwolf.org', 'update: new key stored' );
    $t->( !exists $r2->data->{groups}, 'update: key set to undef is deleted' );
    $t->( $pg->psql("SELECT a_session ? 'groups' FROM sessions WHERE id = '$id'") eq 'f',
        'update: key gone from the row' );

    # kind mismatch is LL::NG's business, but must still work with us
    my $bad = Lemonldap::NG::Common::Session->new( { @common, id => $id, kind => 'Persistent' } );
    $t->( $bad->error && $bad->error =~ /kind mismatch/, 'kind mismatch reported by LL::NG' );

    # missing id: LL::NG reports it (from our "Object does not exist")
    my $missing = Lemonldap::NG::Common::Session->new( { @common, id => 'ab' x 32, kind => 'SSO' } );
    $t->( $missing->error && $missing->error =~ /Object does not exist/, 'missing session: error from the backend',
        $missing->error );

    # remove
    $t->( $r2->remove, 'remove returns true', $r2->error );
    $t->( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'") eq '0', 'remove: row gone' );

    # creation with a given id (force): a persistent session, 32-hex id
    my $pid = substr( 'c0ffee' x 6, 0, 32 );
    my $p = Lemonldap::NG::Common::Session->new(
        { @common, id => $pid, force => 1, kind => 'Persistent', info => { _session_uid => 'dwho' } } );
    $t->( !$p->error && $p->id eq $pid, 'force: created with the given id', $p->error );
    $t->( $pg->psql("SELECT a_session->>'_session_uid' FROM sessions WHERE id = '$pid'") eq 'dwho',
        'force: row stored under the given id' );
    my $p2 = Lemonldap::NG::Common::Session->new(
        { @common, id => $pid, force => 1, kind => 'Persistent', info => { extra => 1 } } );
    $t->( !$p2->error && $p2->data->{_session_uid} eq 'dwho' && $p2->data->{extra} == 1,
        'force on an existing id: data kept and merged', $p2->error );
    $p2->remove;
    return @r;
}

# The manager's "test Apache::Session" on configuration save
# (Lemonldap::NG::Manager::Conf::Tests, testApacheSession), step by step.
{
    require Lemonldap::NG::Common::Apache::Session;
    my %conf = ( globalStorage => $CLASS, globalStorageOptions => { $pg->options } );
    my ( $id, %h );
    eval {
        tie %h, 'Lemonldap::NG::Common::Apache::Session', undef,
          { %{ $conf{globalStorageOptions} }, backend => $conf{globalStorage} };
    };
    ok( !$@ && tied(%h), 'manager test: session created' ) or diag $@;
    eval {
        $h{a} = 1;
        $id = $h{_session_id};
        untie(%h);
        tie %h, 'Lemonldap::NG::Common::Apache::Session', $id,
          { %{ $conf{globalStorageOptions} }, backend => $conf{globalStorage} };
    };
    is( $@, '', 'manager test: data inserted and session re-tied' );
    is( $h{a}, 1, 'manager test: data recovered' );
    eval { tied(%h)->delete; };
    is( $@, '', 'manager test: session deleted' );
    untie %h;
    is( $pg->psql("SELECT count(*) FROM sessions WHERE id = '$id'"), 0, 'manager test: nothing left behind' );
}

# As root: no cache layer.
for ( scenario() ) { ok( $_->[0], "root: $_->[1]" ) or diag( $_->[2] // '' ) }

# As an unprivileged user with a local cache: LL::NG wraps our store.
SKIP: {
    skip 'not root: cannot switch to an unprivileged user', 1 unless $> == 0;
    my $uid = getpwnam('nobody');
    skip 'no user "nobody"', 1 unless defined $uid;
    my $dir = tempdir( CLEANUP => 1 );
    chown $uid, -1, $dir;
    pipe my $rd, my $wr or die;
    my $pid = fork // die;
    if ( !$pid ) {
        close $rd;
        $) = "65534 65534";
        $> = $< = $uid;
        my @r = eval {
            scenario( cacheModule => 'Cache::FileCache',
                cacheModuleOptions => { namespace => 'lemonldap-ng-sessions', cache_root => $dir,
                    default_expires_in => 600 } );
        };
        push @r, [ 0, "died: $@" ] if $@;
        push @r, [ $> != 0 ? 1 : 0, 'ran unprivileged' ];
        my $wrapped = 0;
        {
            no warnings 'once';
            require Lemonldap::NG::Common::Apache::Session::Store;
            my %opts = ( $pg->options, backend => $CLASS, localStorage => 'Cache::FileCache',
                localStorageOptions => { cache_root => $dir } );
            tie my %h, 'Lemonldap::NG::Common::Apache::Session', undef, \%opts;
            $wrapped = ref( tied(%h)->{object_store} ) eq 'Lemonldap::NG::Common::Apache::Session::Store'
              && ref( tied(%h)->{args}{object_store} ) eq 'Apache::Session::Browseable::Store::Patroni';
            untie %h;
        }
        push @r, [ $wrapped, 'our store is wrapped by the LL::NG cache layer' ];
        print $wr join( "\t", map { ( $_ // "" ) =~ s/[\t\n]+/ /gr } @$_[ 0 .. 2 ] ), "\n" for @r;
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    my @lines = <$rd>;
    waitpid $pid, 0;
    ok( scalar @lines, 'unprivileged run reported' );
    for (@lines) {
        chomp;
        my ( $ok, $name, $d ) = split /\t/, $_, 3;
        ok( $ok, "unprivileged, cached: $name" ) or diag($d);
    }
}

done_testing;

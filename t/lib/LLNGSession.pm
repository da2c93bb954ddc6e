package LLNGSession;

# An LL::NG-like SSO session for the benchmarks: about 40 keys, ~1.1 kB of
# JSON, with the fields the browse queries, the purge and the manager use.
#   LLNGSession::data($n)                          # session number $n
#   LLNGSession::data($n, persistent_every => 20)  # every 20th is Persistent
#   LLNGSession::fill($pg, $first, $last, %o)      # rows $first..$last into
#       $pg's sessions table (PgServer), ids sprintf('%064x', $n), with COPY;
#       %o as for data(); returns the seconds it took

use strict;
use File::Temp ();
use warnings;
use JSON::XS ();
use Time::HiRes ();

sub data {
    my ( $n, %o ) = @_;
    my $t = 1700000000 + $n;
    my $kind = $o{persistent_every} && !( $n % $o{persistent_every} ) ? 'Persistent' : 'SSO';
    return {
        _session_kind => $kind, _utime => $t, _lastSeen => $t,
        _startTime => '20231114221320', _updateTime => '20231114221320',
        _whatToTrace => "user$n", _user => "user$n",
        uid => "user$n", cn => "User Number $n", sn => "Number", givenName => 'User',
        mail => "user$n\@example.com", ipAddr => '10.1.' . ( $n % 250 ) . '.' . ( $n % 200 ),
        _httpSessionType => '', _auth => 'LDAP', _userDB => 'LDAP', _passwordDB => 'LDAP',
        _issuerDB => 'Null', authenticationLevel => 2, _timezone => 1, _url => '',
        _language => 'fr', _loginHistory => { successLogin => [ { _utime => $t, ipAddr => '10.1.2.3' } ] },
        groups => 'users; admins; staff', hGroups => { users => { name => 'users' },
            admins => { name => 'admins' }, staff => { name => 'staff' } },
        _2fDevices => '[]', _clientIP => '10.1.2.3', _userIP => '10.1.2.3',
        _dn => "uid=user$n,ou=users,dc=example,dc=com", _choice => '', _lastAuthnUTime => $t,
        _sessionTimeout => 72000, _ssoOn => 1, _favicon => '/static/common/favicon.ico',
        _portal => 'https://auth.example.com/', departmentNumber => 42,
        employeeType => 'permanent', telephoneNumber => '+33 1 23 45 67 89',
        postalAddress => '1 rue de la Paix, 75002 Paris', preferredLanguage => 'fr-FR',
    };
}

sub fill {
    my ( $pg, $first, $last, %o ) = @_;
    my $t0   = Time::HiRes::time();
    my $json = JSON::XS->new->canonical;
    my $f_tmp = File::Temp->new( TEMPLATE => 'asbp-llng-fill-XXXXXXXX', TMPDIR => 1 );   # exclusive, unpredictable
    my $f = $f_tmp->filename;
    open my $fh, '>', $f or die "$f: $!";
    print $fh "COPY sessions (id, a_session) FROM STDIN;\n";
    for my $n ( $first .. $last ) {
        my $d  = data( $n, %o );
        my $id = sprintf '%064x', $n;
        $d->{_session_id} = $id;
        ( my $j = $json->encode($d) ) =~ s/\\/\\\\/g;    # COPY text format
        print $fh "$id\t$j\n";
    }
    print $fh "\\.\n";
    close $fh or die "$f: $!";
    chmod 0644, $f;    # psql runs as postgres
    $pg->psql_super("\\i $f");
    unlink $f;
    $pg->psql_super('VACUUM ANALYZE sessions');
    return Time::HiRes::time() - $t0;
}

1;

package LLNGSession;

# An LL::NG-like SSO session for the benchmarks: about 40 keys, ~1.1 kB of
# JSON, with the fields the browse queries, the purge and the manager use.
#   LLNGSession::data($n)                          # session number $n
#   LLNGSession::data($n, persistent_every => 20)  # every 20th is Persistent

use strict;
use warnings;

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

1;

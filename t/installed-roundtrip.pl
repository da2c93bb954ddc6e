#!/usr/bin/perl
# Run by tools/release-check against an installed copy of the module: one
# LemonLDAP::NG session round trip (create, read, update, delete) through
# Lemonldap::NG::Common::Session on a throwaway PostgreSQL.  Prints the path
# of the module it loaded, and "roundtrip ok" on success.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";    # PgServer only
use PgServer;
use Lemonldap::NG::Common::Session;
use Apache::Session::Browseable::Patroni;

print "module: $INC{'Apache/Session/Browseable/Patroni.pm'}\n";
my $pg = PgServer->new;
my @common = ( storageModule => 'Apache::Session::Browseable::Patroni',
    storageModuleOptions => { $pg->options } );
my $s = Lemonldap::NG::Common::Session->new( { @common, kind => 'SSO', info => { uid => 'dwho' } } );
die "create: " . $s->error . "\n" if $s->error;
my $r = Lemonldap::NG::Common::Session->new( { @common, id => $s->id, kind => 'SSO' } );
die "read: " . ( $r->error // 'wrong data' ) . "\n" unless !$r->error && $r->data->{uid} eq 'dwho';
$r->update( { mail => 'dwho@badwolf.org' } ) or die "update: " . $r->error . "\n";
$r->remove or die "remove: " . $r->error . "\n";
print "roundtrip ok\n";

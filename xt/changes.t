# Changes parses as CPAN::Changes and has an entry for the module's version.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use ReleaseNeeds;
use Test::More;
use ExtUtils::MakeMaker ();

needs( 'Test::CPAN::Changes', '0.4', 'libcpan-changes-perl' );
chdir "$FindBin::Bin/.." or die "chdir: $!";
my $version = MM->parse_version('lib/Apache/Session/Browseable/Patroni.pm');
Test::CPAN::Changes::changes_file_ok( 'Changes', { version => $version } );
done_testing;

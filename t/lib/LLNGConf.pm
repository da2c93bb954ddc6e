package LLNGConf;

# A minimal LemonLDAP::NG configuration for the tools that read one
# (lemonldap-ng-sessions, purgeCentralCache): a File configuration backend
# in a temporary directory with lmConf-1.json naming our class as every
# session storage.  Returns the environment the tools need.
#
#   my %env = LLNGConf::write($pg, timeout => 3600);
#   local @ENV{ keys %env } = values %env;

use strict;
use warnings;
use File::Temp qw(tempdir);
use JSON::PP;
use Cwd qw(abs_path);

sub write {
    my ( $pg, %o ) = @_;
    my $dir = tempdir( CLEANUP => 1 );
    chmod 0755, $dir;
    my $class = 'Apache::Session::Browseable::Patroni';
    my %opts = ( $pg->options, %{ $o{options} || {} } );
    my $conf = {
        cfgNum => 1, cfgAuthor => 'asbp tests', cfgDate => time,
        globalStorage => $class, globalStorageOptions => \%opts,
        persistentStorage => $class, persistentStorageOptions => { %opts, TableName => $o{ptable} || 'sessions' },
        timeout => $o{timeout} // 72000, timeoutActivity => $o{timeoutActivity} // 0,
        %{ $o{extra} || {} },
    };
    open my $fh, '>', "$dir/lmConf-1.json" or die;
    print $fh JSON::PP->new->canonical->encode($conf);
    close $fh;
    open $fh, '>', "$dir/lemonldap-ng.ini" or die;
    print $fh "[all]\n\n[configuration]\ntype = File\ndirName = $dir\n\n[portal]\n\n[handler]\n\n[manager]\n";
    close $fh;
    chmod 0644, "$dir/lmConf-1.json", "$dir/lemonldap-ng.ini";
    my $blib = abs_path('blib');
    return (
        LLNG_DEFAULTCONFFILE => "$dir/lemonldap-ng.ini",
        PERL5LIB => join( ':', "$blib/lib", "$blib/arch", $ENV{PERL5LIB} ? $ENV{PERL5LIB} : () ),
    );
}

1;

package PatroniConfig;

# Test helper: the configuration files of the throw-away Patroni cluster
# (t/lib/PatroniCluster.pm): etcd's YAML, each node's Patroni YAML, the
# post_bootstrap script and its SQL.  Plain functions, no state:
#
#   PatroniConfig::write_etcd($file, %p)        name data_dir client_port
#                                               peer_port token
#   PatroniConfig::write_bootstrap($dir, %p)    pg_bin user password;
#                                               returns the script's path
#   PatroniConfig::write_node($file, \%cluster, \%node)  atomically
#   PatroniConfig::yaml($data)                  the minimal YAML writer

use strict;
use warnings;

use Carp qw(croak);
use JSON::PP ();

our $VERSION = '0.01';

use constant MIB => 1024 * 1024;

sub write_file {
    my ($f, $content, $mode) = @_;
    open my $fh, '>', $f or croak "write $f: $!";
    print $fh $content;
    close $fh or croak "close $f: $!";
    chmod $mode, $f if defined $mode;
}

sub write_etcd {
    my ($file, %p) = @_;
    my $peer = "http://127.0.0.1:$p{peer_port}";
    my $client = "http://127.0.0.1:$p{client_port}";
    write_file($file, yaml({
        'name'                        => $p{name},
        'data-dir'                    => $p{data_dir},
        'listen-client-urls'          => $client,
        'advertise-client-urls'       => $client,
        'listen-peer-urls'            => $peer,
        'initial-advertise-peer-urls' => $peer,
        'initial-cluster'             => "$p{name}=$peer",
        'initial-cluster-state'       => 'new',
        'initial-cluster-token'       => $p{token},
        'enable-v2'                   => \1,
        'logger'                      => 'zap',
        'log-outputs'                 => ['stderr'],
    }), 0644);
}

sub _qident { my $s = shift; $s =~ s/"/""/g; qq{"$s"} }
sub _qlit   { my $s = shift; $s =~ s/'/''/g; qq{'$s'} }

# post_bootstrap: role $p{user}, database sessions owned by it, the tables.
sub write_bootstrap {
    my ($dir, %p) = @_;
    my $sql = "$dir/bootstrap.sql";
    write_file($sql, bootstrap_sql($p{user}, $p{password}), 0644);
    my $script = "$dir/post_bootstrap.sh";
    write_file($script, <<"SH", 0755);
#!/bin/sh
# Patroni passes a libpq conninfo string as the last argument.
for last; do :; done
exec $p{pg_bin}/psql -X -q -v ON_ERROR_STOP=1 -d "\$last" -f $sql
SH
    return $script;
}

sub bootstrap_sql {
    my ($user, $password) = @_;
    my $u = _qident($user);
    my $pw = _qlit($password);
    return <<"SQL";
CREATE ROLE $u LOGIN PASSWORD $pw;
CREATE DATABASE sessions OWNER $u;
\\connect sessions
SET ROLE $u;
CREATE TABLE sessions (
    id varchar(64) not null primary key,
    a_session jsonb
);
CREATE INDEX uid1 ON sessions USING BTREE ((a_session ->> '_whatToTrace'));
CREATE INDEX s1 ON sessions ((a_session ->> '_session_kind'));
CREATE INDEX u1 ON sessions ((cast(a_session ->> '_utime' as bigint)));
CREATE INDEX ip1 ON sessions USING BTREE ((a_session ->> 'ipAddr'));
-- side table for the helper's own write probes
CREATE TABLE asbp_probe (
    k text not null primary key,
    node text,
    t timestamptz not null default clock_timestamp()
);
SQL
}

# One node's Patroni configuration.  %$c: scope etcd_port sync pg_bin
# post_bootstrap superuser superpassword repl_user repl_password;
# %$nd: name api_listen api_port pg_port data home.
sub node_conf {
    my ($c, $nd) = @_;
    # $nd->{host} (PatroniCluster's distinct_hosts): PostgreSQL also listens
    # on, and is advertised at, a loopback address of its own.
    my $h   = $nd->{host} // '127.0.0.1';
    my $net = $h eq '127.0.0.1' ? '127.0.0.1/32' : '127.0.0.0/8';
    return {
        scope     => $c->{scope},
        namespace => '/asbp/',
        name      => $nd->{name},
        restapi   => {
            listen          => "127.0.0.1:$nd->{api_listen}",
            connect_address => "127.0.0.1:$nd->{api_port}",
        },
        etcd      => { host => "127.0.0.1:$c->{etcd_port}", protocol => 'http' },
        bootstrap => {
            dcs => {
                ttl                     => 10,
                loop_wait               => 1,
                retry_timeout           => 4,
                maximum_lag_on_failover => MIB,
                synchronous_mode        => $c->{sync} ? \1 : \0,
                postgresql              => {
                    use_pg_rewind => \1,
                    use_slots     => \1,
                    remove_data_directory_on_rewind_failure     => \1,
                    remove_data_directory_on_diverged_timelines => \1,
                    parameters    => {
                        wal_level             => 'replica',
                        hot_standby           => 'on',
                        wal_log_hints         => 'on',
                        max_wal_senders       => 10,
                        max_replication_slots => 10,
                        wal_keep_size         => '128MB',
                        shared_buffers        => '32MB',
                        max_connections       => 100,
                    },
                },
            },
            initdb         => [ { encoding => 'UTF8' }, { locale => 'C.UTF-8' } ],
            post_bootstrap => $c->{post_bootstrap},
        },
        postgresql => {
            listen          => ( $h eq '127.0.0.1' ? '' : '127.0.0.1,' ) . "$h:$nd->{pg_port}",
            connect_address => "$h:$nd->{pg_port}",
            data_dir        => $nd->{data},
            bin_dir         => $c->{pg_bin},
            pgpass          => "$nd->{home}/pgpass",
            use_unix_socket => \1,
            authentication  => {
                superuser   => { username => $c->{superuser}, password => $c->{superpassword} },
                replication => { username => $c->{repl_user}, password => $c->{repl_password} },
            },
            parameters => {
                unix_socket_directories => "$nd->{home}/sock",
                logging_collector       => 'on',
                log_directory           => "$nd->{home}/pglog",
                log_filename            => 'postgresql.log',
                log_line_prefix         => '%m [%p] %q%u@%d ',
            },
            pg_hba => [
                'local all all trust',
                'local replication all trust',
                "host replication $c->{repl_user} $net scram-sha-256",
                "host all all $net scram-sha-256",
            ],
            basebackup => [ { checkpoint => 'fast' } ],
        },
    };
}

# Written to a temporary file, then renamed: a SIGHUPed patroni never reads
# half a file.
sub write_node {
    my ($file, $c, $nd) = @_;
    my $tmp = "$file.tmp";
    write_file($tmp, yaml(node_conf($c, $nd)), 0644);
    rename $tmp, $file or croak "rename $tmp: $!";
}

# Minimal YAML writer: nested hashes and arrays; strings double-quoted
# (JSON escapes are valid YAML), numbers bare, \1 / \0 for true / false.
sub yaml {
    my ($d, $ind) = @_;
    $ind //= '';
    my $out = '';
    if (ref $d eq 'HASH') {
        for my $k (sort keys %$d) {
            my $v = $d->{$k};
            if ((ref $v eq 'HASH' && %$v) || (ref $v eq 'ARRAY' && @$v)) {
                $out .= "$ind$k:\n" . yaml($v, "$ind  ");
            } else {
                $out .= "$ind$k: " . _yscalar($v) . "\n";
            }
        }
    } else {
        for my $v (@$d) {
            $out .= "$ind- " . _yscalar($v) . "\n";
        }
    }
    return $out;
}

sub _yscalar {
    my ($v) = @_;
    return 'null' unless defined $v;
    return $$v ? 'true' : 'false' if ref $v eq 'SCALAR';
    if (ref $v eq 'HASH') {
        return '{' . join(', ', map { _yscalar($_) . ': ' . _yscalar($v->{$_}) } sort keys %$v) . '}';
    }
    return '[' . join(', ', map { _yscalar($_) } @$v) . ']' if ref $v eq 'ARRAY';
    return $v if $v =~ /^-?[1-9]\d{0,17}$|^0$/;
    return JSON::PP->new->allow_nonref->ascii->encode("$v");
}

1;

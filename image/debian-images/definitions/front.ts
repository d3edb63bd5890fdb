import type { ImageDefinitionInput } from '../definition.ts';
import { BASE_PACKAGES, BASE_SKIPPED, deviceArchive, NSSWITCH, rootAnd, WITHOUT_GCONV } from './debian-base.ts';

/**
 * nginx's main configuration. Sites are included from conf.d/, so the family stack's
 * front door mounts its rendered site.conf over conf.d/default.conf as it does with
 * the nginx image it pulls (compose/stack.yml, memu_proxy). Runs as www-data: the pid
 * file and nginx's temporary files (compiled in under /var/lib/nginx) live in
 * directories that user owns, and port 80 needs no privilege in a container (Docker
 * sets ip_unprivileged_port_start=0).
 */
export const FRONT_NGINX_CONF = `# The Memu front door: image definition "front" (image/debian-images/definitions/front.ts).
daemon off;
worker_processes 1;
pid /run/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  server_tokens off;
  access_log /dev/stdout;
  include /etc/nginx/conf.d/*.conf;
}
`;

/**
 * The site the image ships: the family stack's admin block and setup redirect
 * (compose/templates/nginx/site.conf.tmpl) and what the demo and test stacks need — the
 * agent on the host at /admin/ (host.docker.internal, from the service's extra_hosts:
 * host-gateway), the setup wizard as a browser's front page until setup is finished, the
 * stack's `web` service at /, resolved per request through Docker's DNS so the front
 * door starts, and answers "starting", while web is down.
 */
export const FRONT_DEFAULT_SITE = `# Replaced by the family stack's rendered site.conf (mounted over this file).
resolver 127.0.0.11 valid=10s ipv6=off;
# Docker's DNS passes a name it does not know (a service that is down) on to the host's
# servers, which an offline box never hears from.
resolver_timeout 3s;

map $http_accept $memu_asks_for_html {
    default 0;
    ~text/html 1;
}

upstream memu_agent {
    server host.docker.internal:8080;
}

server {
    listen 80 default_server;
    server_name _;
    # Redirects name the path only: the box is often reached through a forwarded port
    # (the VM's 8081), which nginx cannot know.
    absolute_redirect off;

    proxy_http_version 1.1;
    # A service that just went away leaves an address nothing answers on: say "starting"
    # after 5 s rather than nginx's 60.
    proxy_connect_timeout 5s;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;

    error_page 502 504 = @memu_starting;
    location @memu_starting {
        default_type text/plain;
        add_header Retry-After "10" always;
        return 503 "Memu is starting up. Try again in a minute.\\n";
    }

    # For the container healthcheck. (allow/deny would not guard it: return answers
    # in the rewrite phase, before nginx checks access.)
    location = /healthz {
        access_log off;
        default_type text/plain;
        return 200 "ok\\n";
    }

    location = /admin {
        return 301 /admin/;
    }
    location ^~ /admin/ {
        proxy_pass http://memu_agent;
    }

    # As the family stack's front door: for a person (a browser asking for a page), the
    # front page is the setup wizard until the agent says setup is finished (204 from
    # /admin/setup/state; 401 before). Other clients (scripts, health probes) get the
    # page itself. A location with its own error_page inherits none of the server's.
    location = / {
        # @memu_front_page is reached through an error page; its own need this.
        recursive_error_pages on;
        error_page 418 = @memu_front_page;
        if ($memu_asks_for_html) {
            return 418;
        }
        error_page 502 504 = @memu_starting;
        set $memu_web http://web:8082;
        proxy_pass $memu_web;
    }
    location @memu_front_page {
        auth_request /_memu/setup-finished;
        error_page 401 = @memu_setup;
        error_page 500 502 504 = @memu_starting;
        set $memu_web http://web:8082;
        proxy_pass $memu_web;
    }
    location = /_memu/setup-finished {
        internal;
        proxy_pass http://memu_agent/admin/setup/state;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
    location @memu_setup {
        return 302 /admin/setup;
    }

    location / {
        set $memu_web http://web:8082;
        proxy_pass $memu_web;
    }
}
`;

/** The front door: Debian's nginx behind port 80, with busybox's wget for the healthcheck. */
export const front: ImageDefinitionInput = {
  name: 'front',
  description: "The Memu front door: Debian's nginx (trixie's nginx-light is this package plus an echo module)",
  archive: deviceArchive(),
  packages: [...BASE_PACKAGES, 'nginx', 'busybox-static'],
  skipDependencies: [
    ...BASE_SKIPPED,
    { package: 'iproute2', reason: "nginx's postinst only (ss, to see whether port 80 is taken before starting the service)" },
    { package: 'debconf', reason: "nginx-common's postinst only" },
  ],
  removePaths: WITHOUT_GCONV,
  // www-data as Debian's base-passwd has it.
  ...rootAnd({ name: 'www-data', id: 33, home: '/var/www' }),
  files: [
    ...NSSWITCH,
    { kind: 'file', path: '/etc/nginx/nginx.conf', content: FRONT_NGINX_CONF },
    { kind: 'file', path: '/etc/nginx/conf.d/default.conf', content: FRONT_DEFAULT_SITE },
    { kind: 'directory', path: '/run/nginx', mode: 0o755, owner: 'www-data:www-data' },
    { kind: 'directory', path: '/var/lib/nginx', mode: 0o750, owner: 'www-data:www-data' },
    // The compose healthcheck calls wget, as with the alpine nginx image.
    { kind: 'symlink', path: '/usr/bin/wget', target: 'busybox' },
  ],
  config: {
    user: 'www-data',
    entrypoint: ['/usr/sbin/nginx', '-e', 'stderr'],
    exposedPorts: ['80/tcp'],
    // nginx's graceful shutdown: finishes the requests in flight.
    stopSignal: 'SIGQUIT',
    healthcheck: { test: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1/healthz'], intervalSeconds: 30, timeoutSeconds: 5, retries: 3 },
  },
};

-- The Backend.AI 24.03 schema, as 'schema oneshot' of the reference creates it on an empty PostgreSQL 15
-- database (tables, enum types, defaults, constraints, indexes). Applied by migration m0001; the
-- reference's Alembic head is stamped afterwards so that its tooling sees a 24.03 database.

CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public;

CREATE TYPE public.agentstatus AS ENUM (
    'ALIVE',
    'LOST',
    'RESTARTING',
    'TERMINATED'
);

CREATE TYPE public.defaultforunspecified AS ENUM (
    'LIMITED',
    'UNLIMITED'
);

CREATE TYPE public.endpointlifecycle AS ENUM (
    'created',
    'destroying',
    'destroyed'
);

CREATE TYPE public.errorlog_severity AS ENUM (
    'critical',
    'error',
    'warning'
);

CREATE TYPE public.imagetype AS ENUM (
    'COMPUTE',
    'SYSTEM',
    'SERVICE'
);

CREATE TYPE public.kernelstatus AS ENUM (
    'PENDING',
    'SCHEDULED',
    'PREPARING',
    'BUILDING',
    'PULLING',
    'RUNNING',
    'RESTARTING',
    'RESIZING',
    'SUSPENDED',
    'TERMINATING',
    'TERMINATED',
    'ERROR',
    'CANCELLED'
);

CREATE TYPE public.projecttype AS ENUM (
    'general',
    'model-store'
);

CREATE TYPE public.routestatus AS ENUM (
    'healthy',
    'unhealthy',
    'terminating',
    'provisioning',
    'failed_to_start'
);

CREATE TYPE public.sessionresult AS ENUM (
    'UNDEFINED',
    'SUCCESS',
    'FAILURE'
);

CREATE TYPE public.sessionstatus AS ENUM (
    'PENDING',
    'SCHEDULED',
    'PULLING',
    'PREPARING',
    'RUNNING',
    'RESTARTING',
    'RUNNING_DEGRADED',
    'TERMINATING',
    'TERMINATED',
    'ERROR',
    'CANCELLED'
);

CREATE TYPE public.templatetype AS ENUM (
    'TASK',
    'CLUSTER'
);

CREATE TYPE public.userrole AS ENUM (
    'superadmin',
    'admin',
    'user',
    'monitor'
);

CREATE TYPE public.userstatus AS ENUM (
    'active',
    'inactive',
    'deleted',
    'before-verification'
);

CREATE TYPE public.vfolderinvitationstate AS ENUM (
    'pending',
    'canceled',
    'accepted',
    'rejected'
);

CREATE TYPE public.vfolderownershiptype AS ENUM (
    'user',
    'group'
);

CREATE TYPE public.vfolderpermission AS ENUM (
    'ro',
    'rw',
    'wd'
);

CREATE TYPE public.vfolderusagemode AS ENUM (
    'general',
    'model',
    'data'
);

CREATE TABLE public.agents (
    id character varying(64) NOT NULL,
    status public.agentstatus NOT NULL,
    status_changed timestamp with time zone,
    region character varying(64) NOT NULL,
    scaling_group character varying(64) DEFAULT 'default'::character varying NOT NULL,
    schedulable boolean DEFAULT true NOT NULL,
    available_slots jsonb NOT NULL,
    occupied_slots jsonb NOT NULL,
    addr character varying(128) NOT NULL,
    public_host character varying(256),
    public_key character varying(40),
    first_contact timestamp with time zone DEFAULT now(),
    lost_at timestamp with time zone,
    version character varying(64) NOT NULL,
    architecture character varying(32) NOT NULL,
    compute_plugins jsonb NOT NULL,
    auto_terminate_abusing_kernel boolean DEFAULT false NOT NULL
);

CREATE TABLE public.alembic_version (
    version_num character varying(32)
);

CREATE TABLE public.association_groups_users (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    user_id uuid NOT NULL,
    group_id uuid NOT NULL
);

CREATE TABLE public.domains (
    name character varying(64) NOT NULL,
    description character varying(512),
    is_active boolean,
    created_at timestamp with time zone DEFAULT now(),
    modified_at timestamp with time zone DEFAULT now(),
    total_resource_slots jsonb,
    allowed_vfolder_hosts jsonb NOT NULL,
    allowed_docker_registries character varying[] NOT NULL,
    integration_id character varying(512),
    dotfiles bytea NOT NULL
);

CREATE TABLE public.endpoint_tokens (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    token character varying NOT NULL,
    endpoint uuid,
    session_owner uuid,
    domain character varying(64) NOT NULL,
    project uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now()
);

CREATE TABLE public.endpoints (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    name character varying(512) NOT NULL,
    created_user uuid NOT NULL,
    session_owner uuid NOT NULL,
    desired_session_count integer DEFAULT 0 NOT NULL,
    image uuid NOT NULL,
    model uuid,
    model_mount_destination character varying(1024) DEFAULT '/models'::character varying NOT NULL,
    domain character varying(64) NOT NULL,
    project uuid NOT NULL,
    resource_group character varying(64) NOT NULL,
    lifecycle_stage public.endpointlifecycle NOT NULL,
    tag character varying(64),
    startup_command text,
    bootstrap_script character varying(16384),
    callback_url text,
    environ jsonb,
    open_to_public boolean,
    runtime_variant character varying(64) NOT NULL,
    model_definition_path character varying(128),
    resource_slots jsonb NOT NULL,
    url character varying(1024),
    resource_opts jsonb,
    cluster_mode character varying(16) DEFAULT 'SINGLE_NODE'::character varying NOT NULL,
    cluster_size integer DEFAULT 1 NOT NULL,
    extra_mounts jsonb DEFAULT '[]'::jsonb NOT NULL,
    retries integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    destroyed_at timestamp with time zone
);

CREATE TABLE public.error_logs (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    severity public.errorlog_severity,
    source character varying,
    "user" uuid,
    is_read boolean,
    is_cleared boolean,
    message text,
    context_lang character varying,
    context_env jsonb,
    request_url character varying,
    request_status integer,
    traceback text
);

CREATE TABLE public.groups (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    name character varying(64) NOT NULL,
    description character varying(512),
    is_active boolean,
    created_at timestamp with time zone DEFAULT now(),
    modified_at timestamp with time zone DEFAULT now(),
    integration_id character varying(512),
    domain_name character varying(64) NOT NULL,
    total_resource_slots jsonb,
    allowed_vfolder_hosts jsonb NOT NULL,
    dotfiles bytea NOT NULL,
    resource_policy character varying(256) NOT NULL,
    type public.projecttype NOT NULL,
    container_registry jsonb
);

CREATE TABLE public.image_aliases (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    alias character varying,
    image uuid NOT NULL
);

CREATE TABLE public.images (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    name character varying NOT NULL,
    image character varying NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    tag text,
    registry character varying NOT NULL,
    architecture character varying NOT NULL,
    config_digest character(72) NOT NULL,
    size_bytes bigint NOT NULL,
    is_local boolean DEFAULT false NOT NULL,
    type public.imagetype NOT NULL,
    accelerators character varying,
    labels json NOT NULL,
    resources jsonb NOT NULL
);

CREATE TABLE public.kernels (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    session_id uuid NOT NULL,
    session_creation_id character varying(32),
    session_name character varying(64),
    session_type character varying(64) DEFAULT 'INTERACTIVE'::character varying NOT NULL,
    cluster_mode character varying(16) DEFAULT 'SINGLE_NODE'::character varying NOT NULL,
    cluster_size integer NOT NULL,
    cluster_role character varying(16) NOT NULL,
    cluster_idx integer NOT NULL,
    local_rank integer NOT NULL,
    cluster_hostname character varying(64) NOT NULL,
    scaling_group character varying(64),
    agent character varying(64),
    agent_addr character varying(128),
    domain_name character varying(64) NOT NULL,
    group_id uuid NOT NULL,
    user_uuid uuid NOT NULL,
    access_key character varying(20),
    image character varying(512),
    architecture character varying(32),
    registry character varying(512),
    tag character varying(64),
    container_id character varying(64),
    occupied_slots jsonb NOT NULL,
    requested_slots jsonb NOT NULL,
    occupied_shares jsonb NOT NULL,
    environ character varying[],
    mounts character varying[],
    mount_map jsonb,
    vfolder_mounts jsonb,
    attached_devices jsonb,
    resource_opts jsonb,
    bootstrap_script character varying(16384),
    kernel_host character varying(128),
    repl_in_port integer NOT NULL,
    repl_out_port integer NOT NULL,
    stdin_port integer NOT NULL,
    stdout_port integer NOT NULL,
    service_ports jsonb,
    preopen_ports integer[],
    use_host_network boolean NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    terminated_at timestamp with time zone,
    starts_at timestamp with time zone,
    status public.kernelstatus DEFAULT 'PENDING'::public.kernelstatus NOT NULL,
    status_changed timestamp with time zone,
    status_info character varying,
    status_data jsonb,
    status_history jsonb,
    callback_url text,
    startup_command text,
    result public.sessionresult DEFAULT 'UNDEFINED'::public.sessionresult NOT NULL,
    internal_data jsonb,
    container_log bytea,
    num_queries bigint,
    last_stat jsonb
);

CREATE TABLE public.keypair_resource_policies (
    name character varying(256) NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    default_for_unspecified public.defaultforunspecified NOT NULL,
    total_resource_slots jsonb NOT NULL,
    max_session_lifetime integer DEFAULT 0 NOT NULL,
    max_concurrent_sessions integer NOT NULL,
    max_pending_session_count integer,
    max_pending_session_resource_slots jsonb,
    max_concurrent_sftp_sessions integer DEFAULT 1 NOT NULL,
    max_containers_per_session integer NOT NULL,
    idle_timeout bigint NOT NULL,
    allowed_vfolder_hosts jsonb NOT NULL
);

CREATE TABLE public.keypairs (
    user_id character varying(256),
    access_key character varying(20) NOT NULL,
    secret_key character varying(40),
    is_active boolean,
    is_admin boolean DEFAULT false,
    created_at timestamp with time zone DEFAULT now(),
    modified_at timestamp with time zone DEFAULT now(),
    last_used timestamp with time zone,
    rate_limit integer,
    num_queries integer DEFAULT 0,
    ssh_public_key text,
    ssh_private_key text,
    "user" uuid NOT NULL,
    resource_policy character varying(256) NOT NULL,
    dotfiles bytea NOT NULL,
    bootstrap_script character varying(65536) NOT NULL
);

CREATE TABLE public.project_resource_policies (
    name character varying(256) NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    max_vfolder_count integer NOT NULL,
    max_quota_scope_size bigint NOT NULL
);

CREATE TABLE public.resource_presets (
    name character varying(256) NOT NULL,
    resource_slots jsonb NOT NULL,
    shared_memory bigint
);

CREATE TABLE public.routings (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    endpoint uuid NOT NULL,
    session uuid,
    session_owner uuid NOT NULL,
    domain character varying(64) NOT NULL,
    project uuid NOT NULL,
    status public.routestatus NOT NULL,
    traffic_ratio double precision NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    error_data jsonb
);

CREATE TABLE public.scaling_groups (
    name character varying(64) NOT NULL,
    description character varying(512),
    is_active boolean,
    is_public boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    wsproxy_addr character varying(1024),
    wsproxy_api_token character varying(128),
    driver character varying(64) NOT NULL,
    driver_opts jsonb NOT NULL,
    scheduler character varying(64) NOT NULL,
    use_host_network boolean NOT NULL,
    scheduler_opts jsonb NOT NULL
);

CREATE TABLE public.session_dependencies (
    session_id uuid NOT NULL,
    depends_on uuid NOT NULL
);

CREATE TABLE public.session_templates (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    is_active boolean,
    domain_name character varying(64) NOT NULL,
    group_id uuid,
    user_uuid uuid NOT NULL,
    type public.templatetype DEFAULT 'TASK'::public.templatetype NOT NULL,
    name character varying(128),
    template jsonb NOT NULL
);

CREATE TABLE public.sessions (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    creation_id character varying(32),
    name character varying(64),
    session_type character varying(64) DEFAULT 'INTERACTIVE'::character varying NOT NULL,
    cluster_mode character varying(16) DEFAULT 'SINGLE_NODE'::character varying NOT NULL,
    cluster_size integer NOT NULL,
    agent_ids character varying[],
    scaling_group_name character varying(64),
    target_sgroup_names character varying(64)[] DEFAULT '{}'::character varying[],
    domain_name character varying(64) NOT NULL,
    group_id uuid NOT NULL,
    user_uuid uuid NOT NULL,
    access_key character varying(20),
    images character varying[],
    tag character varying(64),
    occupying_slots jsonb NOT NULL,
    requested_slots jsonb NOT NULL,
    vfolder_mounts jsonb,
    environ jsonb,
    bootstrap_script character varying(16384),
    use_host_network boolean NOT NULL,
    timeout bigint,
    created_at timestamp with time zone DEFAULT now(),
    terminated_at timestamp with time zone,
    starts_at timestamp with time zone,
    status public.sessionstatus DEFAULT 'PENDING'::public.sessionstatus NOT NULL,
    status_info character varying,
    status_data jsonb,
    status_history jsonb,
    callback_url text,
    startup_command text,
    result public.sessionresult DEFAULT 'UNDEFINED'::public.sessionresult NOT NULL,
    num_queries bigint,
    last_stat jsonb
);

CREATE TABLE public.sgroups_for_domains (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    scaling_group character varying(64) NOT NULL,
    domain character varying(64) NOT NULL
);

CREATE TABLE public.sgroups_for_groups (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    scaling_group character varying(64) NOT NULL,
    "group" uuid NOT NULL
);

CREATE TABLE public.sgroups_for_keypairs (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    scaling_group character varying(64) NOT NULL,
    access_key character varying(20) NOT NULL
);

CREATE TABLE public.user_resource_policies (
    name character varying(256) NOT NULL,
    created_at timestamp with time zone DEFAULT now(),
    max_vfolder_count integer NOT NULL,
    max_quota_scope_size bigint NOT NULL,
    max_session_count_per_model_session integer NOT NULL,
    max_customized_image_count integer NOT NULL
);

CREATE TABLE public.users (
    uuid uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    username character varying(64),
    email character varying(64) NOT NULL,
    password character varying,
    need_password_change boolean,
    password_changed_at timestamp with time zone DEFAULT now(),
    full_name character varying(64),
    description character varying(500),
    status public.userstatus NOT NULL,
    status_info character varying,
    created_at timestamp with time zone DEFAULT now(),
    modified_at timestamp with time zone DEFAULT now(),
    integration_id character varying(512),
    domain_name character varying(64),
    role public.userrole,
    allowed_client_ip cidr[],
    totp_key character varying(32),
    totp_activated boolean DEFAULT false,
    totp_activated_at timestamp with time zone,
    resource_policy character varying(256) NOT NULL,
    sudo_session_enabled boolean NOT NULL,
    main_access_key character varying(20)
);

CREATE TABLE public.vfolder_attachment (
    vfolder uuid NOT NULL,
    kernel uuid NOT NULL
);

CREATE TABLE public.vfolder_invitations (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    permission public.vfolderpermission,
    inviter character varying(256),
    invitee character varying(256) NOT NULL,
    state public.vfolderinvitationstate,
    created_at timestamp with time zone DEFAULT now(),
    modified_at timestamp with time zone,
    vfolder uuid NOT NULL
);

CREATE TABLE public.vfolder_permissions (
    permission public.vfolderpermission,
    vfolder uuid NOT NULL,
    "user" uuid NOT NULL
);

CREATE TABLE public.vfolders (
    id uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    host character varying(128) NOT NULL,
    quota_scope_id character varying(64) NOT NULL,
    name character varying(64) NOT NULL,
    usage_mode public.vfolderusagemode NOT NULL,
    permission public.vfolderpermission,
    max_files integer,
    max_size integer,
    num_files integer,
    cur_size integer,
    created_at timestamp with time zone DEFAULT now(),
    last_used timestamp with time zone,
    creator character varying(128),
    unmanaged_path character varying(512),
    ownership_type public.vfolderownershiptype NOT NULL,
    "user" uuid,
    "group" uuid,
    cloneable boolean NOT NULL,
    status character varying(64) DEFAULT 'ready'::character varying NOT NULL,
    status_history jsonb,
    status_changed timestamp with time zone
);

ALTER TABLE ONLY public.agents
    ADD CONSTRAINT pk_agents PRIMARY KEY (id);

ALTER TABLE ONLY public.association_groups_users
    ADD CONSTRAINT pk_association_groups_users PRIMARY KEY (id);

ALTER TABLE ONLY public.domains
    ADD CONSTRAINT pk_domains PRIMARY KEY (name);

ALTER TABLE ONLY public.endpoint_tokens
    ADD CONSTRAINT pk_endpoint_tokens PRIMARY KEY (id);

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT pk_endpoints PRIMARY KEY (id);

ALTER TABLE ONLY public.error_logs
    ADD CONSTRAINT pk_error_logs PRIMARY KEY (id);

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT pk_groups PRIMARY KEY (id);

ALTER TABLE ONLY public.image_aliases
    ADD CONSTRAINT pk_image_aliases PRIMARY KEY (id);

ALTER TABLE ONLY public.images
    ADD CONSTRAINT pk_images PRIMARY KEY (id);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT pk_kernels PRIMARY KEY (id);

ALTER TABLE ONLY public.keypair_resource_policies
    ADD CONSTRAINT pk_keypair_resource_policies PRIMARY KEY (name);

ALTER TABLE ONLY public.keypairs
    ADD CONSTRAINT pk_keypairs PRIMARY KEY (access_key);

ALTER TABLE ONLY public.project_resource_policies
    ADD CONSTRAINT pk_project_resource_policies PRIMARY KEY (name);

ALTER TABLE ONLY public.resource_presets
    ADD CONSTRAINT pk_resource_presets PRIMARY KEY (name);

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT pk_routings PRIMARY KEY (id);

ALTER TABLE ONLY public.scaling_groups
    ADD CONSTRAINT pk_scaling_groups PRIMARY KEY (name);

ALTER TABLE ONLY public.session_templates
    ADD CONSTRAINT pk_session_templates PRIMARY KEY (id);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT pk_sessions PRIMARY KEY (id);

ALTER TABLE ONLY public.sgroups_for_domains
    ADD CONSTRAINT pk_sgroups_for_domains PRIMARY KEY (id);

ALTER TABLE ONLY public.sgroups_for_groups
    ADD CONSTRAINT pk_sgroups_for_groups PRIMARY KEY (id);

ALTER TABLE ONLY public.sgroups_for_keypairs
    ADD CONSTRAINT pk_sgroups_for_keypairs PRIMARY KEY (id);

ALTER TABLE ONLY public.user_resource_policies
    ADD CONSTRAINT pk_user_resource_policies PRIMARY KEY (name);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT pk_users PRIMARY KEY (uuid);

ALTER TABLE ONLY public.vfolder_attachment
    ADD CONSTRAINT pk_vfolder_attachment PRIMARY KEY (vfolder, kernel);

ALTER TABLE ONLY public.vfolder_invitations
    ADD CONSTRAINT pk_vfolder_invitations PRIMARY KEY (id);

ALTER TABLE ONLY public.vfolders
    ADD CONSTRAINT pk_vfolders PRIMARY KEY (id);

ALTER TABLE ONLY public.session_dependencies
    ADD CONSTRAINT sess_dep_pk PRIMARY KEY (session_id, depends_on);

ALTER TABLE ONLY public.association_groups_users
    ADD CONSTRAINT uq_association_user_id_group_id UNIQUE (user_id, group_id);

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT uq_groups_name_domain_name UNIQUE (name, domain_name);

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT uq_routings_endpoint_session UNIQUE (endpoint, session);

ALTER TABLE ONLY public.sgroups_for_keypairs
    ADD CONSTRAINT uq_sgroup_akey UNIQUE (scaling_group, access_key);

ALTER TABLE ONLY public.sgroups_for_domains
    ADD CONSTRAINT uq_sgroup_domain UNIQUE (scaling_group, domain);

ALTER TABLE ONLY public.sgroups_for_groups
    ADD CONSTRAINT uq_sgroup_ugroup UNIQUE (scaling_group, "group");

ALTER TABLE ONLY public.users
    ADD CONSTRAINT uq_users_username UNIQUE (username);

CREATE INDEX ix_agents_region ON public.agents USING btree (region);

CREATE INDEX ix_agents_scaling_group ON public.agents USING btree (scaling_group);

CREATE INDEX ix_agents_status ON public.agents USING btree (status);

CREATE INDEX ix_endpoints_resource_group ON public.endpoints USING btree (resource_group);

CREATE INDEX ix_error_logs_created_at ON public.error_logs USING btree (created_at);

CREATE INDEX ix_error_logs_is_cleared ON public.error_logs USING btree (is_cleared);

CREATE INDEX ix_error_logs_is_read ON public.error_logs USING btree (is_read);

CREATE INDEX ix_error_logs_severity ON public.error_logs USING btree (severity);

CREATE INDEX ix_error_logs_user ON public.error_logs USING btree ("user");

CREATE INDEX ix_groups_domain_name ON public.groups USING btree (domain_name);

CREATE UNIQUE INDEX ix_image_aliases_alias ON public.image_aliases USING btree (alias);

CREATE INDEX ix_images_architecture ON public.images USING btree (architecture);

CREATE INDEX ix_images_created_at ON public.images USING btree (created_at);

CREATE INDEX ix_images_image ON public.images USING btree (image);

CREATE INDEX ix_images_name ON public.images USING btree (name);

CREATE INDEX ix_images_registry ON public.images USING btree (registry);

CREATE INDEX ix_kernels_cluster_role ON public.kernels USING btree (cluster_role);

CREATE INDEX ix_kernels_created_at ON public.kernels USING btree (created_at);

CREATE INDEX ix_kernels_result ON public.kernels USING btree (result);

CREATE INDEX ix_kernels_scaling_group ON public.kernels USING btree (scaling_group);

CREATE INDEX ix_kernels_sess_id_role ON public.kernels USING btree (session_id, cluster_role);

CREATE INDEX ix_kernels_session_id ON public.kernels USING btree (session_id);

CREATE INDEX ix_kernels_session_name ON public.kernels USING btree (session_name);

CREATE INDEX ix_kernels_session_type ON public.kernels USING btree (session_type);

CREATE INDEX ix_kernels_status ON public.kernels USING btree (status);

CREATE INDEX ix_kernels_status_changed ON public.kernels USING btree (status_changed);

CREATE INDEX ix_kernels_status_role ON public.kernels USING btree (status, cluster_role);

CREATE INDEX ix_kernels_terminated_at ON public.kernels USING btree (terminated_at);

CREATE UNIQUE INDEX ix_kernels_unique_sess_token ON public.kernels USING btree (access_key, session_name) WHERE ((status <> ALL (ARRAY['TERMINATED'::public.kernelstatus, 'CANCELLED'::public.kernelstatus])) AND ((cluster_role)::text = 'main'::text));

CREATE INDEX ix_kernels_updated_order ON public.kernels USING btree (GREATEST('created_at'::text, 'terminated_at'::text, 'status_changed'::text));

CREATE INDEX ix_keypairs_is_active ON public.keypairs USING btree (is_active);

CREATE INDEX ix_keypairs_is_admin ON public.keypairs USING btree (is_admin);

CREATE INDEX ix_keypairs_user_id ON public.keypairs USING btree (user_id);

CREATE INDEX ix_scaling_groups_is_active ON public.scaling_groups USING btree (is_active);

CREATE INDEX ix_scaling_groups_is_public ON public.scaling_groups USING btree (is_public);

CREATE INDEX ix_session_dependencies_depends_on ON public.session_dependencies USING btree (depends_on);

CREATE INDEX ix_session_dependencies_session_id ON public.session_dependencies USING btree (session_id);

CREATE INDEX ix_session_templates_created_at ON public.session_templates USING btree (created_at);

CREATE INDEX ix_session_templates_type ON public.session_templates USING btree (type);

CREATE INDEX ix_session_templates_user_uuid ON public.session_templates USING btree (user_uuid);

CREATE INDEX ix_sessions_created_at ON public.sessions USING btree (created_at);

CREATE INDEX ix_sessions_name ON public.sessions USING btree (name);

CREATE INDEX ix_sessions_result ON public.sessions USING btree (result);

CREATE INDEX ix_sessions_scaling_group_name ON public.sessions USING btree (scaling_group_name);

CREATE INDEX ix_sessions_session_type ON public.sessions USING btree (session_type);

CREATE INDEX ix_sessions_status ON public.sessions USING btree (status);

CREATE INDEX ix_sessions_terminated_at ON public.sessions USING btree (terminated_at);

CREATE INDEX ix_sessions_updated_order ON public.sessions USING btree (GREATEST('created_at'::text, 'terminated_at'::text));

CREATE INDEX ix_sgroups_for_domains_domain ON public.sgroups_for_domains USING btree (domain);

CREATE INDEX ix_sgroups_for_domains_scaling_group ON public.sgroups_for_domains USING btree (scaling_group);

CREATE INDEX ix_sgroups_for_groups_group ON public.sgroups_for_groups USING btree ("group");

CREATE INDEX ix_sgroups_for_groups_scaling_group ON public.sgroups_for_groups USING btree (scaling_group);

CREATE INDEX ix_sgroups_for_keypairs_access_key ON public.sgroups_for_keypairs USING btree (access_key);

CREATE INDEX ix_sgroups_for_keypairs_scaling_group ON public.sgroups_for_keypairs USING btree (scaling_group);

CREATE INDEX ix_users_domain_name ON public.users USING btree (domain_name);

CREATE UNIQUE INDEX ix_users_email ON public.users USING btree (email);

CREATE INDEX ix_vfolders_host ON public.vfolders USING btree (host);

CREATE INDEX ix_vfolders_name ON public.vfolders USING btree (name);

CREATE INDEX ix_vfolders_ownership_type ON public.vfolders USING btree (ownership_type);

CREATE INDEX ix_vfolders_status ON public.vfolders USING btree (status);

CREATE INDEX ix_vfolders_status_changed ON public.vfolders USING btree (status_changed);

CREATE INDEX ix_vfolders_usage_mode ON public.vfolders USING btree (usage_mode);

ALTER TABLE ONLY public.agents
    ADD CONSTRAINT fk_agents_scaling_group_scaling_groups FOREIGN KEY (scaling_group) REFERENCES public.scaling_groups(name);

ALTER TABLE ONLY public.association_groups_users
    ADD CONSTRAINT fk_association_groups_users_group_id_groups FOREIGN KEY (group_id) REFERENCES public.groups(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.association_groups_users
    ADD CONSTRAINT fk_association_groups_users_user_id_users FOREIGN KEY (user_id) REFERENCES public.users(uuid) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.endpoint_tokens
    ADD CONSTRAINT fk_endpoint_tokens_domain_domains FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE CASCADE;

ALTER TABLE ONLY public.endpoint_tokens
    ADD CONSTRAINT fk_endpoint_tokens_endpoint_endpoints FOREIGN KEY (endpoint) REFERENCES public.endpoints(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.endpoint_tokens
    ADD CONSTRAINT fk_endpoint_tokens_project_groups FOREIGN KEY (project) REFERENCES public.groups(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.endpoint_tokens
    ADD CONSTRAINT fk_endpoint_tokens_session_owner_users FOREIGN KEY (session_owner) REFERENCES public.users(uuid);

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_created_user_users FOREIGN KEY (created_user) REFERENCES public.users(uuid) ON DELETE RESTRICT;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_domain_domains FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE RESTRICT;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_image_images FOREIGN KEY (image) REFERENCES public.images(id) ON DELETE RESTRICT;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_model_vfolders FOREIGN KEY (model) REFERENCES public.vfolders(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_project_groups FOREIGN KEY (project) REFERENCES public.groups(id) ON DELETE RESTRICT;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_resource_group_scaling_groups FOREIGN KEY (resource_group) REFERENCES public.scaling_groups(name) ON DELETE RESTRICT;

ALTER TABLE ONLY public.endpoints
    ADD CONSTRAINT fk_endpoints_session_owner_users FOREIGN KEY (session_owner) REFERENCES public.users(uuid) ON DELETE RESTRICT;

ALTER TABLE ONLY public.error_logs
    ADD CONSTRAINT fk_error_logs_user_users FOREIGN KEY ("user") REFERENCES public.users(uuid);

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT fk_groups_domain_name_domains FOREIGN KEY (domain_name) REFERENCES public.domains(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.groups
    ADD CONSTRAINT fk_groups_resource_policy_project_resource_policies FOREIGN KEY (resource_policy) REFERENCES public.project_resource_policies(name);

ALTER TABLE ONLY public.image_aliases
    ADD CONSTRAINT fk_image_aliases_image_images FOREIGN KEY (image) REFERENCES public.images(id);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_access_key_keypairs FOREIGN KEY (access_key) REFERENCES public.keypairs(access_key);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_agent_agents FOREIGN KEY (agent) REFERENCES public.agents(id);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_domain_name_domains FOREIGN KEY (domain_name) REFERENCES public.domains(name);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_group_id_groups FOREIGN KEY (group_id) REFERENCES public.groups(id);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_scaling_group_scaling_groups FOREIGN KEY (scaling_group) REFERENCES public.scaling_groups(name);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_session_id_sessions FOREIGN KEY (session_id) REFERENCES public.sessions(id);

ALTER TABLE ONLY public.kernels
    ADD CONSTRAINT fk_kernels_user_uuid_users FOREIGN KEY (user_uuid) REFERENCES public.users(uuid);

ALTER TABLE ONLY public.keypairs
    ADD CONSTRAINT fk_keypairs_resource_policy_keypair_resource_policies FOREIGN KEY (resource_policy) REFERENCES public.keypair_resource_policies(name);

ALTER TABLE ONLY public.keypairs
    ADD CONSTRAINT fk_keypairs_user_users FOREIGN KEY ("user") REFERENCES public.users(uuid);

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT fk_routings_domain_domains FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE RESTRICT;

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT fk_routings_endpoint_endpoints FOREIGN KEY (endpoint) REFERENCES public.endpoints(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT fk_routings_project_groups FOREIGN KEY (project) REFERENCES public.groups(id) ON DELETE RESTRICT;

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT fk_routings_session_owner_users FOREIGN KEY (session_owner) REFERENCES public.users(uuid) ON DELETE RESTRICT;

ALTER TABLE ONLY public.routings
    ADD CONSTRAINT fk_routings_session_sessions FOREIGN KEY (session) REFERENCES public.sessions(id) ON DELETE RESTRICT;

ALTER TABLE ONLY public.session_dependencies
    ADD CONSTRAINT fk_session_dependencies_depends_on_sessions FOREIGN KEY (depends_on) REFERENCES public.sessions(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.session_dependencies
    ADD CONSTRAINT fk_session_dependencies_session_id_sessions FOREIGN KEY (session_id) REFERENCES public.sessions(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.session_templates
    ADD CONSTRAINT fk_session_templates_domain_name_domains FOREIGN KEY (domain_name) REFERENCES public.domains(name);

ALTER TABLE ONLY public.session_templates
    ADD CONSTRAINT fk_session_templates_group_id_groups FOREIGN KEY (group_id) REFERENCES public.groups(id);

ALTER TABLE ONLY public.session_templates
    ADD CONSTRAINT fk_session_templates_user_uuid_users FOREIGN KEY (user_uuid) REFERENCES public.users(uuid);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT fk_sessions_access_key_keypairs FOREIGN KEY (access_key) REFERENCES public.keypairs(access_key);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT fk_sessions_domain_name_domains FOREIGN KEY (domain_name) REFERENCES public.domains(name);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT fk_sessions_group_id_groups FOREIGN KEY (group_id) REFERENCES public.groups(id);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT fk_sessions_scaling_group_name_scaling_groups FOREIGN KEY (scaling_group_name) REFERENCES public.scaling_groups(name);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT fk_sessions_user_uuid_users FOREIGN KEY (user_uuid) REFERENCES public.users(uuid);

ALTER TABLE ONLY public.sgroups_for_domains
    ADD CONSTRAINT fk_sgroups_for_domains_domain_domains FOREIGN KEY (domain) REFERENCES public.domains(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.sgroups_for_domains
    ADD CONSTRAINT fk_sgroups_for_domains_scaling_group_scaling_groups FOREIGN KEY (scaling_group) REFERENCES public.scaling_groups(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.sgroups_for_groups
    ADD CONSTRAINT fk_sgroups_for_groups_group_groups FOREIGN KEY ("group") REFERENCES public.groups(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.sgroups_for_groups
    ADD CONSTRAINT fk_sgroups_for_groups_scaling_group_scaling_groups FOREIGN KEY (scaling_group) REFERENCES public.scaling_groups(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.sgroups_for_keypairs
    ADD CONSTRAINT fk_sgroups_for_keypairs_access_key_keypairs FOREIGN KEY (access_key) REFERENCES public.keypairs(access_key) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.sgroups_for_keypairs
    ADD CONSTRAINT fk_sgroups_for_keypairs_scaling_group_scaling_groups FOREIGN KEY (scaling_group) REFERENCES public.scaling_groups(name) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.users
    ADD CONSTRAINT fk_users_domain_name_domains FOREIGN KEY (domain_name) REFERENCES public.domains(name);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT fk_users_main_access_key_keypairs FOREIGN KEY (main_access_key) REFERENCES public.keypairs(access_key) ON DELETE SET NULL;

ALTER TABLE ONLY public.users
    ADD CONSTRAINT fk_users_resource_policy_user_resource_policies FOREIGN KEY (resource_policy) REFERENCES public.user_resource_policies(name);

ALTER TABLE ONLY public.vfolder_attachment
    ADD CONSTRAINT fk_vfolder_attachment_kernel_kernels FOREIGN KEY (kernel) REFERENCES public.kernels(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.vfolder_attachment
    ADD CONSTRAINT fk_vfolder_attachment_vfolder_vfolders FOREIGN KEY (vfolder) REFERENCES public.vfolders(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.vfolder_invitations
    ADD CONSTRAINT fk_vfolder_invitations_vfolder_vfolders FOREIGN KEY (vfolder) REFERENCES public.vfolders(id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE ONLY public.vfolder_permissions
    ADD CONSTRAINT fk_vfolder_permissions_user_users FOREIGN KEY ("user") REFERENCES public.users(uuid);

ALTER TABLE ONLY public.vfolder_permissions
    ADD CONSTRAINT fk_vfolder_permissions_vfolder_vfolders FOREIGN KEY (vfolder) REFERENCES public.vfolders(id) ON UPDATE CASCADE ON DELETE CASCADE;

